#!/usr/bin/env bash
# Scripts/install.sh [--uninstall]: builds release binaries and installs
#   $PREFIX/bin/gmemfs, $PREFIX/bin/gmemctl
#   $PREFIX/share/man/man1/gmemfs.1, gmemctl.1      (generated from the argument parser)
#   bash, zsh and fish completions                   (--generate-completion-script)
#   $PREFIX/share/gmemfs/gmemfs-test.sh              (the shell test kit)
#   $PREFIX/share/gmemfs/python/                     (the Python package: pip install it)
#   $PREFIX/share/doc/gmemfs/*.md                    (docs/, which the man pages point at)
# PREFIX defaults to /usr/local; DESTDIR (staging root, for packages) is honoured.
# --uninstall removes exactly these files.
#
# `mount -t fuse.gmemfs` and fstab lines need no extra link: mount.fuse3 runs gmemfs through
# /bin/sh, and mount(8) clears PATH, so the shell's default path
# (/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin) must hold gmemfs: the default
# PREFIX (or /usr) does. See docs/semantics.md ("Mount options").
set -euo pipefail
cd "$(dirname "$0")/.."
. Scripts/lib/swift.sh

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
root="$DESTDIR$PREFIX"
tools=(gmemfs gmemctl)
# The Python package's files, relative to python/ (its build backend included: pip needs it).
python_files() {
	(cd python && find pyproject.toml build_backend.py gmemfs_testing -name '*.py' -o -name pyproject.toml) | sort
}
files() {
	for t in "${tools[@]}"; do
		echo "bin/$t"
		echo "share/man/man1/$t.1"
		echo "share/bash-completion/completions/$t"
		echo "share/zsh/site-functions/_$t"
		echo "share/fish/vendor_completions.d/$t.fish"
	done
	echo share/gmemfs/gmemfs-test.sh
	python_files | sed 's|^|share/gmemfs/python/|'
	for d in docs/*.md; do echo "share/doc/gmemfs/${d#docs/}"; done
}

if [ "${1:-}" = --uninstall ]; then
	if [ -x "$root/bin/gmemfs" ]; then echo "uninstalling $("$root/bin/gmemfs" --version 2>/dev/null || echo gmemfs) from $root"; fi
	for f in $(files); do
		if [ -e "$root/$f" ]; then rm -f "$root/$f" && echo "removed $root/$f"; fi
	done
	rmdir "$root/share/gmemfs/python/gmemfs_testing" "$root/share/gmemfs/python" "$root/share/gmemfs" "$root/share/doc/gmemfs" 2>/dev/null || true
	exit 0
elif [ $# -gt 0 ]; then
	echo "usage: [PREFIX=/usr/local] [DESTDIR=] $0 [--uninstall]" >&2
	exit 64
fi

require_swift
# swift-argument-parser's generate-manual plugin (works offline). First: it builds the tools
# with the default flags, and the installed ones must be the static build below.
swift package generate-manual --configuration release >/dev/null
manuals=.build/plugins/GenerateManual/outputs
# The Swift standard library (and Foundation) linked in: no RUNPATH into the toolchain, so an
# install copied to another machine, or packaged from DESTDIR, runs without Swift there.
# A scratch path of its own: the flag changes how every module compiles, and the release build
# in .build (Scripts/mount.sh, the man pages) would otherwise be rebuilt each time.
static=(-c release --static-swift-stdlib --scratch-path .build/static)
for t in "${tools[@]}"; do swift build "${static[@]}" --product "$t"; done
bin=$(swift build "${static[@]}" --show-bin-path)

if [ -x "$root/bin/gmemfs" ]; then
	echo "replacing the gmemfs installed in $root ($("$root/bin/gmemfs" --version 2>/dev/null || echo unknown version))"
fi
install -d "$root/bin" "$root/share/man/man1" "$root/share/bash-completion/completions" \
	"$root/share/zsh/site-functions" "$root/share/fish/vendor_completions.d" \
	"$root/share/gmemfs/python/gmemfs_testing" "$root/share/doc/gmemfs"
install -m 0644 docs/*.md "$root/share/doc/gmemfs/"
install -m 0644 contrib/gmemfs-test.sh "$root/share/gmemfs/gmemfs-test.sh"
for f in $(python_files); do
	install -m 0644 "python/$f" "$root/share/gmemfs/python/$f"
done
for t in "${tools[@]}"; do
	install -m 0755 "$bin/$t" "$root/bin/$t"
	# The generated page, finished (Scripts/lib/man/polish.awk): no empty lines, examples
	# set apart, FILES, EXIT STATUS, EXAMPLES and SEE ALSO, docs/ at their installed place.
	sed "s|DOCDIR|$PREFIX/share/doc/gmemfs|g" "Scripts/lib/man/$t.tail" >"$root/share/man/man1/$t.tail"
	awk -v tool="$t" -v tail="$root/share/man/man1/$t.tail" -v docdir="$PREFIX/share/doc/gmemfs" \
		-f Scripts/lib/man/polish.awk "$manuals/$t/$t.1" >"$root/share/man/man1/$t.1"
	rm "$root/share/man/man1/$t.tail"
	chmod 0644 "$root/share/man/man1/$t.1"
	"$bin/$t" --generate-completion-script bash >"$root/share/bash-completion/completions/$t"
	"$bin/$t" --generate-completion-script zsh >"$root/share/zsh/site-functions/_$t"
	"$bin/$t" --generate-completion-script fish >"$root/share/fish/vendor_completions.d/$t.fish"
done
for f in $(files); do echo "installed $root/$f"; done

case ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:" in
*":$PREFIX/bin:"*) ;;
*) echo "note: mount -t fuse.gmemfs finds gmemfs only in /bin/sh's default path; link $PREFIX/bin/gmemfs into /usr/local/bin for it" >&2 ;;
esac
