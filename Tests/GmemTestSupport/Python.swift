import Foundation
import GmemABI
#if canImport(Glibc)
import Glibc
#endif

/// Runs Python scripts for the parts of a test that must fault on a mapping (SIGBUS would kill
/// the test process itself). Every script gets ``prelude`` first: `Resources/prelude.py`, a
/// plain Python file (read and lint it as one) whose helpers are described there.
public enum Python {
    /// Where the prelude is (beside this file, so no bundle lookup is needed).
    public static let preludePath = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Resources/prelude.py").path
    /// The repository's Python package directory (`python/`), put on the scripts' PYTHONPATH:
    /// the prelude imports its constants from `gmemfs_testing.abi`.
    public static let packageDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("python").path
    /// The one Python copy of the interface constants.
    public static let constantsPath = packageDirectory + "/gmemfs_testing/abi.py"

    /// The interface constants `abi.py` defines, as GmemABI and the kernel headers have them.
    static let constants: [(name: String, value: String)] = [
        ("P", String(gmemPageSize)),
        ("XATTR_CREATE", GmemXattr.create), ("XATTR_SET_ATTRIBUTES", GmemXattr.setAttributes),
        ("XATTR_ATTRIBUTES", GmemXattr.attributes), ("XATTR_FLAGS", GmemXattr.flags), ("XATTR_STATS", GmemXattr.stats),
        ("XATTR_INJECT", GmemXattr.inject), (KVMMemoryAttributes2.ioctlName, String(KVMMemoryAttributes2.ioctlNumber)),
        (GmemPageReference.pinName, String(GmemPageReference.pinNumber)), (GmemPageReference.unpinName, String(GmemPageReference.unpinNumber)),
        ("FALLOC_FL_KEEP_SIZE", String(Falloc.keepSize)), ("FALLOC_FL_PUNCH_HOLE", String(Falloc.punchHole)),
    ]

    /// The prelude's text, after checking that `abi.py`, which it imports, defines each of
    /// ``constants`` once at top level with the Swift value (`NAME = 'text'` or `NAME = number`,
    /// decimal or 0x hex).
    public static func prelude() throws -> String {
        _ = try checkedConstants(String(contentsOfFile: constantsPath, encoding: .utf8))
        return try String(contentsOfFile: preludePath, encoding: .utf8)
    }

    /// `text` if it defines each of ``constants`` as GmemABI has it, else an error naming the
    /// first that differs.
    public static func checkedConstants(_ text: String) throws -> String {
        var defined: [String: [String]] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, !line.hasPrefix(" ") else { continue }
            let name = parts[0].trimmingCharacters(in: .whitespaces)
            var value = parts[1].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, value.hasPrefix("'"), value.hasSuffix("'") {
                value = String(value.dropFirst().dropLast())
            } else if let n = value.hasPrefix("0x") ? Int(value.dropFirst(2), radix: 16) : Int(value) {
                value = String(n)
            }
            defined[name, default: []].append(value)
        }
        for (name, value) in constants where defined[name] != [value] {
            throw HarnessError("\(constantsPath): \(name) must be defined once as \(value) (GmemABI's value), found \(defined[name] ?? [])")
        }
        return text
    }

    /// Runs `prelude + script` with `python3`, passing `arguments` as `sys.argv[1...]`.
    @discardableResult
    public static func run(_ script: String, _ arguments: [String] = [], timeout: TimeInterval = 60) throws -> CommandResult {
        var template = Array("/tmp/gmemfs-py.XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else { throw HarnessError("mkstemp failed") }
        close(fd)
        let path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        defer { unlink(path) }
        try (prelude() + script).write(toFile: path, atomically: false, encoding: .utf8)
        return try GmemTestSupport.run(["/usr/bin/env", "PYTHONPATH=" + packageDirectory, "python3", path] + arguments, timeout: timeout)
    }
}

