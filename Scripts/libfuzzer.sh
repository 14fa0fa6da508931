#!/usr/bin/env bash
# Scripts/libfuzzer.sh [libFuzzer args...]: coverage-guided fuzzing of GmemCore's parsers with
# libFuzzer + AddressSanitizer (swiftc -sanitize=fuzzer,address). The harness
# (Tests/Fuzz/LibFuzzerMain.swift) is compiled together with GmemCore's sources; swift-system
# and GmemABI (the interface target GmemCore imports) come from an ASan build of the package. A trap, an ASan error or a leak stops the run and
# leaves a crash-* reproducer. Examples:
#   Scripts/libfuzzer.sh -runs=1000000          # a fixed number of inputs
#   Scripts/libfuzzer.sh -max_total_time=600    # ten minutes
set -euo pipefail
cd "$(dirname "$0")/.."
ASAN=${GMEM_ASAN_SCRATCH:-.build-asan}   # scratch path of the ASan build
swift build --scratch-path "$ASAN" -Xswiftc -sanitize=address --target SystemPackage >/dev/null
swift build --scratch-path "$ASAN" -Xswiftc -sanitize=address --target GmemABI >/dev/null
out="$ASAN/gmem-libfuzzer"
swiftc -sanitize=fuzzer,address -parse-as-library -g -module-name GmemFuzz \
    -I "$ASAN/debug/Modules" -Xcc -I -Xcc "$(find "$ASAN/checkouts/swift-system/Sources/CSystem" -name include -type d | head -1)" \
    -Xcc -I -Xcc Sources/CGmemABI/include -Xcc -fmodule-map-file="$ASAN/debug/CGmemABI.build/module.modulemap" \
    Sources/GmemCore/*.swift Sources/GmemCore/*/*.swift Tests/Fuzz/LibFuzzerMain.swift \
    "$ASAN"/debug/SystemPackage.build/*.o "$ASAN"/debug/CSystem.build/*.o \
    "$ASAN"/debug/GmemABI.build/*.o "$ASAN"/debug/CGmemABI.build/*.o \
    -o "$out"
mkdir -p "$ASAN/fuzz-corpus"
exec "$out" "$ASAN/fuzz-corpus" "$@"
