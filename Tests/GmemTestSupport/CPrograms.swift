import Foundation

/// The C test programs under `Tests/MountTests/Resources`, compiled with `cc` by the suites
/// that run them. Each includes `gmem_abi.h`, the interface header the Swift target GmemABI
/// imports, so C and Swift share the literal names, numbers and struct.
public enum CProgram {
    /// The package's root directory (this file is `Tests/GmemTestSupport/CPrograms.swift`).
    public static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    /// The directory of `gmem_abi.h`, for `-I`.
    public static let abiIncludeDirectory = packageRoot + "/Sources/CGmemABI/include"
    /// Where the programs' sources are.
    public static let sourceDirectory = packageRoot + "/Tests/MountTests/Resources"

    /// Compiles `Resources/<source>` with `cc -I <abiIncludeDirectory> <flags>` into `binary`
    /// and returns `binary`. A compiler failure throws with its diagnostics.
    @discardableResult
    public static func compile(_ source: String, to binary: String, flags: [String], timeout: TimeInterval = 120) throws -> String {
        try compile(path: sourceDirectory + "/" + source, to: binary, flags: flags + ["-I", abiIncludeDirectory], timeout: timeout)
    }

    /// Compiles the C file at `path` with `cc <flags>` (no include path added: the examples in
    /// docs/ use only the kernel's uAPI) into `binary` and returns `binary`. A compiler failure
    /// throws with its diagnostics.
    @discardableResult
    public static func compile(path: String, to binary: String, flags: [String], timeout: TimeInterval = 120) throws -> String {
        let cc = try run(["cc"] + flags + ["-o", binary, path], timeout: timeout)
        guard cc.succeeded else { throw HarnessError("cc \(path) failed: \(cc.stderr)") }
        return binary
    }
}
