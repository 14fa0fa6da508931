import Foundation
#if canImport(Glibc)
import Glibc
#endif

public struct HarnessError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// Makes a fresh directory `/tmp/PREFIX.XXXXXX` (mkdtemp: mode 0700) and returns its path.
public func makeTemporaryDirectory(_ prefix: String) throws -> String {
    var template = Array("/tmp/\(prefix).XXXXXX".utf8CString)
    guard let dir = mkdtemp(&template) else { throw HarnessError("mkdtemp /tmp/\(prefix).XXXXXX failed") }
    return String(cString: dir)
}

/// The directory holding the package's built executables (beside the test bundle).
public func binDirectory() -> String {
    if let d = ProcessInfo.processInfo.environment["GMEM_BIN_DIR"] { return d }
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
    // swift test may run a bundle nested in .xctest/…; walk up to the folder holding `gmemfs`.
    for _ in 0..<4 where !FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent("gmemfs").path) {
        dir = dir.deletingLastPathComponent()
    }
    return dir.path
}

public func findExecutable(_ name: String) -> String? {
    for d in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        let p = "\(d)/\(name)"
        if access(p, X_OK) == 0 { return p }
    }
    return nil
}

/// The outcome of a command run to completion.
public struct CommandResult: Sendable, CustomStringConvertible {
    public let status: Int32          // exit status, or the signal number when `signal` is true
    public let signaled: Bool
    public let stdout: Data
    public let stderr: String
    public var output: String { String(decoding: stdout, as: UTF8.self) }
    public var succeeded: Bool { !signaled && status == 0 }
    /// The signal that killed the command, if one did.
    public var signal: Int32? { signaled ? status : nil }
    public var description: String { "status=\(status)\(signaled ? " (signal)" : "") stderr=\(stderr.debugDescription)" }
}

/// Runs `argv` (looked up in PATH) to completion with a deadline (then SIGKILL).
@discardableResult
public func run(_ argv: [String], input: Data? = nil, timeout: TimeInterval = 60, environment: [String: String]? = nil) throws -> CommandResult {
    let p = Process()
    let exe = argv[0].contains("/") ? argv[0] : (findExecutable(argv[0]) ?? argv[0])
    p.executableURL = URL(fileURLWithPath: exe)
    p.arguments = Array(argv.dropFirst())
    if let environment { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let out = Pipe(), err = Pipe(), inp = Pipe()
    p.standardOutput = out; p.standardError = err; p.standardInput = inp
    try p.run()
    if let input { inp.fileHandleForWriting.write(input) }
    try? inp.fileHandleForWriting.close()
    // Drain both pipes while waiting so a chatty command cannot block on a full pipe.
    nonisolated(unsafe) var outData = Data(), errData = Data()
    let group = DispatchGroup()
    group.enter(); DispatchQueue.global().async { outData = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    group.enter(); DispatchQueue.global().async { errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { usleep(2000) }
    if p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit(); throw HarnessError("\(argv) timed out after \(timeout)s") }
    p.waitUntilExit()
    // A daemonizing command can leave a grandchild holding the pipes (fusermount3's
    // auto_unmount helper does): do not wait for their end past the deadline.
    guard group.wait(timeout: .now() + max(1, deadline.timeIntervalSinceNow)) == .success else {
        throw HarnessError("\(argv): output still open after exit (a child kept stdout/stderr)")
    }
    return CommandResult(status: p.terminationStatus, signaled: p.terminationReason == .uncaughtSignal,
                         stdout: outData, stderr: String(decoding: errData, as: UTF8.self))
}

/// Runs a shell command line with `bash -c`.
@discardableResult
public func sh(_ command: String, timeout: TimeInterval = 60) throws -> CommandResult {
    try run(["/bin/bash", "-c", command], timeout: timeout)
}
