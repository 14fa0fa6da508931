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

/// Reads one pipe to its end on a thread of its own, which owns the read end and closes it at
/// EOF. A caller may stop waiting (a grandchild can hold the write end for long after the
/// command exits); the reader then finishes later on its own, and nothing it touches is freed
/// under it (reading through a `Pipe`'s `FileHandle` after the `Pipe` is gone traps in
/// Foundation, and its descriptor number may already be reused).
public final class PipeDrain: @unchecked Sendable {
    /// The write end, for `Process.standardOutput`/`standardError`; close the parent's copy
    /// with ``closeWriteEnd()`` once the child runs.
    public let writeEnd: FileHandle
    private let lock = NSLock()
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    public init() throws {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw HarnessError("pipe: \(String(cString: strerror(errno)))") }
        // Not inherited by other tests' children (the child gets its own copy through dup2).
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        writeEnd = FileHandle(fileDescriptor: fds[1], closeOnDealloc: false)
        let fd = fds[0]
        let thread = Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    lock.lock(); data.append(contentsOf: buffer[0..<n]); lock.unlock()
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    break
                }
            }
            close(fd)
            done.signal()
        }
        thread.start()
    }

    /// Closes the parent's copy of the write end (once, after the child has its own).
    public func closeWriteEnd() { close(writeEnd.fileDescriptor) }

    /// Everything read, once the pipe reached EOF before `deadline`; nil if it did not.
    public func wait(until deadline: DispatchTime) -> Data? {
        guard done.wait(timeout: deadline) == .success else { return nil }
        done.signal()   // later waits succeed too
        lock.lock(); defer { lock.unlock() }
        return data
    }
}

/// Starts `p` with its stdout and stderr each drained by a ``PipeDrain``; the parent's copies of
/// the write ends are closed whether or not it starts (so the drains see EOF when the child and
/// its descendants are done).
public func launchDrained(_ p: Process) throws -> (out: PipeDrain, err: PipeDrain) {
    let out = try PipeDrain(), err = try PipeDrain()
    p.standardOutput = out.writeEnd; p.standardError = err.writeEnd
    defer { out.closeWriteEnd(); err.closeWriteEnd() }
    try p.run()
    return (out, err)
}

/// Runs `argv` (looked up in PATH) to completion with a deadline (then SIGKILL).
@discardableResult
public func run(_ argv: [String], input: Data? = nil, timeout: TimeInterval = 60, environment: [String: String]? = nil) throws -> CommandResult {
    let p = Process()
    let exe = argv[0].contains("/") ? argv[0] : (findExecutable(argv[0]) ?? argv[0])
    p.executableURL = URL(fileURLWithPath: exe)
    p.arguments = Array(argv.dropFirst())
    if let environment { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    // Both pipes are drained while waiting, so a chatty command cannot block on a full pipe.
    let inp = Pipe()
    p.standardInput = inp
    let (out, err) = try launchDrained(p)
    if let input { inp.fileHandleForWriting.write(input) }
    try? inp.fileHandleForWriting.close()
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { usleep(2000) }
    if p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit(); throw HarnessError("\(argv) timed out after \(timeout)s") }
    p.waitUntilExit()
    // A daemonizing command can leave a grandchild holding the pipes (fusermount3's
    // auto_unmount helper does): do not wait for their end past the deadline.
    let end = DispatchTime.now() + max(1, deadline.timeIntervalSinceNow)
    guard let outData = out.wait(until: end), let errData = err.wait(until: end) else {
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
