#!/usr/bin/env bash
# Installs the Debian packages gmemfs needs, if any is missing (needs root or sudo).
set -euo pipefail
PACKAGES=(libfuse3-dev fuse3 attr pkg-config python3 python3-pytest python3-venv gcc libc6-dev)  # libc6-dev: libc.a for RunTests' static programs
missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
	echo "deps: installing ${missing[*]}" >&2
	$SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${missing[@]}" >/dev/null
fi
