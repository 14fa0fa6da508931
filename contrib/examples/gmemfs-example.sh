#!/usr/bin/env bash
# An integration test of a program that uses gmemfs, with contrib/gmemfs-test.sh. CI runs it
# (MountTests' IntegrationKitTests) so that the recipe in docs/integration-testing.md works.
set -euo pipefail
. "$(dirname "$0")/../gmemfs-test.sh"

gmemfs_up --file vm:1M:mmap,init-shared
echo "mounted on $GMEMFS_MNT, daemon $GMEMFS_PID"

# Shared memory reads back what was written.
printf 'hello' | dd of="$GMEMFS_MNT/vm" conv=notrunc status=none
[ "$(head -c 5 "$GMEMFS_MNT/vm")" = hello ]

# Private memory is out of the host's reach: cat fails with EACCES.
setfattr -n user.gmem.set_attributes -v "0 4096 private" "$GMEMFS_MNT/vm"
if cat "$GMEMFS_MNT/vm" >/dev/null 2>"$GMEMFS_DIR/err"; then echo "read a private page" >&2; exit 1; fi
grep -q "Permission denied" "$GMEMFS_DIR/err"
[ "$(getfattr --absolute-names --only-values -n user.gmem.attributes "$GMEMFS_MNT/vm")" = "$(printf '0-1000 private\n1000-100000 shared')" ]

gmemfs_down
echo "example passed"
