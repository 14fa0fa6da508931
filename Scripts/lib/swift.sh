# Scripts/lib/swift.sh: the Swift toolchain check each build script runs first, so that a
# machine without it gets told what to install instead of "swift: command not found" (127).
# Source it and call require_swift.

require_swift() {
	local version
	if ! command -v swift >/dev/null 2>&1; then
		cat >&2 <<'MSG'
gmemfs is built with a Swift 6 toolchain (Swift 6.0 or later; tested with 6.3), and there is no
`swift` on PATH. Debian has no package for it: get the toolchain from swift.org,
  https://www.swift.org/install/linux/  (the Debian 12 tarball, or swiftly, its installer)
unpack it, for example to /opt/swift, and put it on PATH:
  export PATH=/opt/swift/usr/bin:$PATH
then run this script again. Scripts/deps.sh installs the Debian packages (libfuse3-dev, fuse3, ...).
MSG
		exit 1
	fi
	version=$(swift --version 2>/dev/null | sed -n 's/.*Swift version \([0-9][0-9]*\)\..*/\1/p' | head -1)
	if [ -z "$version" ] || [ "$version" -lt 6 ]; then
		echo "gmemfs needs Swift 6.0 or later; $(command -v swift) is: $(swift --version 2>&1 | head -1)" >&2
		echo "get a Swift 6 toolchain from https://www.swift.org/install/linux/" >&2
		exit 1
	fi
}
