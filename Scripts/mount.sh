#!/usr/bin/env bash
# Scripts/mount.sh [MOUNTPOINT] [gmemfs options...]
# Installs what is missing, builds gmemfs (release) and mounts the default file
# (MOUNTPOINT/gmem: 1 GiB, mmap-capable, all private) with the guest view.
# Unmount with: fusermount3 -u MOUNTPOINT
set -euo pipefail
cd "$(dirname "$0")/.."
. Scripts/lib/swift.sh
require_swift
MNT=${1:-/tmp/gmem}; shift || true
Scripts/deps.sh
swift build -c release --product gmemfs >&2
mkdir -p "$MNT"
"$(swift build -c release --show-bin-path)/gmemfs" --guest-view "$@" "$MNT"
# The walk-through below is about the default file; with your own --file/-o options, list them.
case " $* " in
*" --file"* | *" -o"*)
	echo "gmemfs is mounted on $MNT: $(cd "$MNT" && ls | tr '\n' ' ')"
	echo "Unmount: fusermount3 -u $MNT"
	exit 0 ;;
esac
cat <<MSG
gmemfs is mounted on $MNT (file $MNT/gmem, 1 GiB, every page private). Try:
  cat $MNT/gmem                                   # Permission denied: memory starts private
  setfattr -n user.gmem.set_attributes -v "0 64K shared" $MNT/gmem
  echo hello | dd of=$MNT/gmem conv=notrunc       # the shared part is the host's
  getfattr --absolute-names --only-values -n user.gmem.attributes $MNT/gmem
Unmount: fusermount3 -u $MNT
MSG
