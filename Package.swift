// swift-tools-version:6.0
//
// gmemfs: a userspace guest_memfd-like file system served through FUSE.
//
// Read bottom-up: Locking (RWLocked), LinuxMounts and LinuxProc (pure /proc parsers and
// per-architecture tables) under everything; CFuse (shim) -> FuseKit (typed libfuse, knows
// nothing of gmem); GmemABI (the public interface, values in CGmemABI's header) -> GmemCore
// (attribute tree, page store, file semantics, every kernel rule in Rules/; no FUSE) ->
// GmemFS (bridge: decode, call, reply) -> thin executables (gmemfs, gmemctl, gmem-bench);
// gmemctl run adds GmemRun (its answers, pure) and CSeccomp (the filter and janitor in C).
//
// Debug builds define GMEM_INTERNAL_CHECKS: the attribute tree validates all of its
// invariants after every mutation (O(n) per store). Release builds compile the checks away.
import PackageDescription

let internalChecks: [SwiftSetting] = [.define("GMEM_INTERNAL_CHECKS", .when(configuration: .debug))]

let package = Package(
    name: "gmemfs",
    products: [
        .executable(name: "gmemfs", targets: ["gmemfs"]),
        .executable(name: "gmemctl", targets: ["gmemctl"]),
        .executable(name: "gmem-bench", targets: ["gmem-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
    ],
    targets: [
        // MARK: - Libraries
        .systemLibrary(name: "CFuse", path: "CFuse", pkgConfig: "fuse3", providers: [.apt(["libfuse3-dev"])]),
        .target(name: "CLinuxSys"),
        // RWLocked: a value reachable only under its lock, for GmemCore and FuseKit alike.
        .target(name: "Locking"),
        // /proc/self/mountinfo, read without asking any mount: for the daemon and gmemctl alike.
        .target(name: "LinuxMounts"),
        // /proc/PID/{syscall,fdinfo,status} parsed and this architecture's syscall numbers.
        .target(name: "LinuxProc"),
        // `gmemctl run`: the seccomp filter, notification ioctls and janitor in C.
        .target(name: "CSeccomp"),
        // The public interface (xattr names, ioctl struct, number grammar, map lines): CGmemABI's
        // header holds the literal values for Swift and the C test programs alike.
        .target(name: "CGmemABI"),
        .target(name: "GmemABI", dependencies: ["CGmemABI"]),
        // `gmemctl run`'s answers to the KVM calls it supervises (pure; docs/run.md).
        .target(name: "GmemRun", dependencies: ["GmemABI", "LinuxProc"]),
        // Starts, waits for and stops a gmemfs child: shared by the tests and `gmemctl tour`.
        .target(name: "GmemDaemonProcess", dependencies: ["LinuxMounts"]),
        .target(
            name: "GmemCore",
            dependencies: ["GmemABI", "CLinuxSys", "Locking", "LinuxProc", .product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: internalChecks),
        .target(
            name: "FuseKit",
            dependencies: ["CFuse", "CLinuxSys", "LinuxMounts", "Locking", .product(name: "SystemPackage", package: "swift-system"),
                           .product(name: "Logging", package: "swift-log")]),
        .target(
            name: "GmemFS",
            dependencies: ["GmemABI", "GmemCore", "FuseKit", "CLinuxSys", "LinuxProc", .product(name: "Logging", package: "swift-log")]),

        // MARK: - Executables
        .executableTarget(
            name: "gmemfs",
            dependencies: ["GmemFS", "FuseKit", "GmemCore", "GmemABI", "LinuxMounts", "CLinuxSys",
                           .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "Logging", package: "swift-log")]),
        .executableTarget(
            name: "gmemctl",
            dependencies: ["GmemABI", "GmemDaemonProcess", "LinuxMounts", "LinuxProc", "GmemRun", "CSeccomp", "CLinuxSys", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(
            name: "gmem-bench",
            dependencies: ["GmemABI", "GmemCore", "CLinuxSys", .product(name: "ArgumentParser", package: "swift-argument-parser")]),

        // MARK: - Tests
        .target(name: "GmemTestSupport",
                dependencies: ["GmemABI", "GmemDaemonProcess", "LinuxMounts", "CLinuxSys", .product(name: "SystemPackage", package: "swift-system")],
                path: "Tests/GmemTestSupport",
                exclude: ["Resources"]),   // prelude.py, read by path
        .testTarget(name: "GmemCoreTests",
                    dependencies: ["GmemABI", "GmemCore", "GmemTestSupport", "GmemFS", "FuseKit", "LinuxMounts", "LinuxProc", "GmemRun", .product(name: "Logging", package: "swift-log")],
                    swiftSettings: internalChecks),
        // The bridge, mount-free: GmemFS handlers answering into FuseKit's ReplyRecorder.
        .testTarget(name: "GmemFSTests",
                    dependencies: ["GmemABI", "GmemCore", "GmemFS", "FuseKit", "GmemTestSupport", "CLinuxSys",
                                   .product(name: "Logging", package: "swift-log"), .product(name: "SystemPackage", package: "swift-system")],
                    swiftSettings: internalChecks),
        .testTarget(name: "MountTests", dependencies: ["GmemABI", "GmemTestSupport", "LinuxMounts", "CLinuxSys"],
                    exclude: ["Resources"]),   // C load generators, compiled by the tests
    ],
    swiftLanguageModes: [.v6]
)
