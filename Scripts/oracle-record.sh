#!/bin/sh
# Records this machine's kernel guest_memfd answers to every case of the kernel oracle into
# Tests/MountTests/Resources/oracle/kernel-$(uname -r).tsv (docs/testing.md, "The kernel
# oracle's recordings"). Needs a KVM with guest_memfd, /dev/fuse and gcc. Commit the file:
# machines without guest_memfd then compare gmemfs with it.
set -eu
cd "$(dirname "$0")/.."
GMEM_ORACLE_RECORD=1 swift test --filter 'KernelOracleTests/theLiveKernelAnswersAsRecorded' "$@"
git status --short Tests/MountTests/Resources/oracle
