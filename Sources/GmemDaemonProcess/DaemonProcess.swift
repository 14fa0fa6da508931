import Foundation
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
        try process.run()
        started?(process.processIdentifier)
        let deadline = Date().addingTimeInterval(timeout)
        while !Self.isMounted(mountpoint) {
            guard process.isRunning else {
                process.waitUntilExit()
                stop()
                throw StartError.exited(status: process.terminationStatus)
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
        if process.isRunning { return -1 }
        return process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
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
