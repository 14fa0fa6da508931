import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Whether mount tests can run here. Under `CI=true` they always run, so that a machine without
/// FUSE fails them instead of silently skipping them.
public enum FUSE {
    public static let isCI = ProcessInfo.processInfo.environment["CI"] == "true"
    public static let available: Bool = isCI || (access("/dev/fuse", R_OK | W_OK) == 0 && findExecutable("fusermount3") != nil)
}

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

/// A gmemfs daemon mounted on a fresh temporary directory, run as a child in the foreground
/// with `-o auto_unmount` (a crashed daemon leaves no dead mount). ``unmount()`` (also run on
/// deinit) stops it with SIGTERM and waits, falling back to SIGKILL and a lazy unmount.
public final class GmemMount: @unchecked Sendable {
    public let path: String
    public let process: Process
    /// The daemon's stdout and stderr go to a file beside the mountpoint (a pipe nobody drains
    /// would block a chatty daemon once 64 KiB are written).
    public let logPath: String
    private var stopped = false

    /// What the daemon has logged so far.
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Mounts with `arguments` (e.g. `["--file", "f:16K:mmap", "--guest-view"]`).
    public init(_ arguments: [String] = [], timeout: TimeInterval = 20) throws {
        guard FUSE.available else { throw HarnessError("FUSE is not available") }
        let dir = try makeTemporaryDirectory("gmemfs-test")
        path = dir + "/mnt"
        logPath = dir + "/gmemfs.log"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: logPath, contents: nil),
              let logFile = FileHandle(forWritingAtPath: logPath) else { throw HarnessError("cannot create \(logPath)") }
        defer { try? logFile.close() }
        process = Process()
        process.executableURL = URL(fileURLWithPath: binDirectory() + "/gmemfs")
        process.arguments = ["-f", "-o", "auto_unmount"] + arguments + [path]
        process.standardError = logFile
        process.standardOutput = logFile
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while !Self.isMounted(path) {
            guard process.isRunning else {
                throw HarnessError("gmemfs (\(binDirectory())/gmemfs) exited (\(process.terminationStatus)) before mounting: \(log)")
            }
            guard Date() < deadline else { unmount(); throw HarnessError("gmemfs did not mount within \(timeout)s") }
            usleep(10_000)
        }
    }

    deinit { unmount() }

    public static func isMounted(_ path: String) -> Bool {
        guard let mounts = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8) else { return false }
        return mounts.split(separator: "\n").contains { $0.split(separator: " ").dropFirst().first.map(String.init) == path }
    }

    public func file(_ name: String) -> String { "\(path)/\(name)" }
    public func guest(_ name: String) -> String { "\(path)/.guest/\(name)" }
    public var isAlive: Bool { process.isRunning }
    public var pid: pid_t { process.processIdentifier }

    /// Stops the daemon (SIGTERM; after 10 s SIGKILL and `fusermount3 -u -z`). Idempotent.
    /// Returns the daemon's exit status (or 128+signal).
    @discardableResult
    public func unmount(signal sig: Int32 = SIGTERM) -> Int32 {
        if stopped { return process.isRunning ? -1 : process.terminationStatus }
        stopped = true
        if process.isRunning {
            kill(process.processIdentifier, sig)
            let deadline = Date().addingTimeInterval(10)
            while process.isRunning && Date() < deadline { usleep(5_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        if Self.isMounted(path) { _ = try? run(["fusermount3", "-u", "-z", path], timeout: 10) }
        try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent)
        return process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
    }
}
