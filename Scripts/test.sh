#!/usr/bin/env bash
# Scripts/test.sh: installs what is missing, then runs every test (unit, model, mount) and the
# attribute-tree checksum check. Mount tests need /dev/fuse; under CI=true its absence fails them.
set -euo pipefail
cd "$(dirname "$0")/.."
. Scripts/lib/swift.sh
require_swift
Scripts/deps.sh
swift build --build-tests
swift test --skip-build
# Install into a temporary DESTDIR (release build, man pages, completions) and use it.
Scripts/test-install.sh
swift build -c release --product gmem-bench
"$(swift build -c release --show-bin-path)/gmem-bench" tree --verify
