import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
import LinuxMounts

/// A gmemfs daemon run as a child in the foreground (`-f`), the one way the tests and
/// `gmemctl tour` start, wait for and stop a daemon. The caller passes `-o auto_unmount` among
/// the arguments so that a crashed daemon leaves no dead mount.
///
/// Contract:
/// - ``init(executable:arguments:mountpoint:logPath:timeout:started:)`` returns only once `mountpoint`
///   is in `/proc/self/mountinfo` (LinuxMounts); if the daemon exits first or the deadline passes it stops the
///   daemon (``stop(signal:)``) and throws, so no path leaves a mount or a process behind.
/// - ``stop(signal:)`` is idempotent: the signal (SIGTERM: the daemon unmounts and exits 0),
///   after 10 s SIGKILL, then `fusermount3 -u -z` if the mount is still there.
/// - The daemon's stdout and stderr go to `logPath` (a pipe nobody drains would block a chatty
///   daemon), its stdin is /dev/null.
public final class DaemonProcess: @unchecked Sendable {
    /// Why a daemon did not mount.
    public enum StartError: Error {
        /// It exited with this status before mounting.
        case exited(status: Int32)
        /// It did not mount within the deadline (it was stopped).
        case timedOut(TimeInterval)
    }

    public let process: Process
    public let mountpoint: String
    private var stopped = false
    /// The exit status as a shell reports it (128 + N for signal N), set by the termination
    /// handler. Foundation's `terminationReason` traps when read between `isRunning` turning
    /// false and its own bookkeeping finishing (seen on a loaded machine), so it is read only
    /// inside the handler, which runs after both.
    private let exitStatus = StatusBox()

    final class StatusBox: Sendable {
        let status = Mutex<Int32?>(nil)
    }

    /// `started` runs with the daemon's pid as soon as it is spawned, before the wait for the
    /// mount (a signal handler that must stop the daemon needs it from then on).
    public init(executable: String, arguments: [String], mountpoint: String, logPath: String, timeout: TimeInterval = 20,
                started: ((pid_t) -> Void)? = nil) throws {
        self.mountpoint = mountpoint
        guard FileManager.default.fileExists(atPath: logPath) || FileManager.default.createFile(atPath: logPath, contents: nil),
              let log = FileHandle(forWritingAtPath: logPath) else { throw CocoaError(.fileWriteUnknown) }
        defer { try? log.close() }
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["-f"] + arguments + [mountpoint]
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        let exitStatus = self.exitStatus
        process.terminationHandler = { p in
            let status = p.terminationReason == .uncaughtSignal ? 128 + p.terminationStatus : p.terminationStatus
            exitStatus.status.withLock { $0 = status }
        }
        try process.run()
        started?(process.processIdentifier)
        let deadline = Date().addingTimeInterval(timeout)
        while !Self.isMounted(mountpoint) {
            guard process.isRunning else {
                process.waitUntilExit()
                let status = stop()
                throw StartError.exited(status: status >= 128 ? status - 128 : status)
            }
            guard Date() < deadline else { stop(); throw StartError.timedOut(timeout) }
            usleep(10_000)
        }
    }

    deinit { stop() }

    public var isRunning: Bool { process.isRunning }
    public var pid: pid_t { process.processIdentifier }

    /// Whether `path` is a mount point now (an exact match in `/proc/self/mountinfo`).
    public static func isMounted(_ path: String) -> Bool {
        MountInfo.current()?.contains { $0.mountPoint == path } ?? false
    }

    /// Stops the daemon and makes sure the mount is gone. Returns the daemon's exit status, or
    /// 128 + signal when a signal ended it.
    @discardableResult
    public func stop(signal sig: Int32 = SIGTERM) -> Int32 {
        if !stopped {
            stopped = true
            if process.isRunning {
                kill(process.processIdentifier, sig)
                let deadline = Date().addingTimeInterval(10)
                while process.isRunning && Date() < deadline { usleep(5_000) }
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                process.waitUntilExit()
            }
            if Self.isMounted(mountpoint) { Self.lazyUnmount(mountpoint) }
        }
        return recordedStatus()
    }

    /// The status the termination handler recorded, waited for at most 5 s (it runs just after
    /// the child is reaped); -1 if the daemon is still running or none was recorded.
    private func recordedStatus() -> Int32 {
        let deadline = Date().addingTimeInterval(5)
        while true {
            if let status = exitStatus.status.withLock({ $0 }) { return status }
            if process.isRunning || Date() >= deadline { return -1 }
            usleep(1_000)
        }
    }

    /// `fusermount3 -u -z PATH`, waited for at most 10 s.
    static func lazyUnmount(_ path: String) {
        let f = Process()
        f.executableURL = URL(fileURLWithPath: ["/usr/bin/fusermount3", "/bin/fusermount3"].first { access($0, X_OK) == 0 } ?? "/bin/fusermount3")
        f.arguments = ["-u", "-z", path]
        f.standardInput = FileHandle.nullDevice
        guard (try? f.run()) != nil else { return }
        let deadline = Date().addingTimeInterval(10)
        while f.isRunning && Date() < deadline { usleep(5_000) }
        if f.isRunning { kill(f.processIdentifier, SIGKILL) }
        f.waitUntilExit()
    }
}
