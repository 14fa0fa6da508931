import Foundation
@_exported import GmemDaemonProcess
#if canImport(Glibc)
import Glibc
#endif

/// Whether mount tests can run here. Under `CI=true` they always run, so that a machine without
/// FUSE fails them instead of silently skipping them.
public enum FUSE {
    public static let isCI = ProcessInfo.processInfo.environment["CI"] == "true"
    public static let available: Bool = isCI || (access("/dev/fuse", R_OK | W_OK) == 0 && findExecutable("fusermount3") != nil)
}

/// The transport the mount tests ask gmemfs for: `GMEM_TRANSPORT=io_uring` runs every
/// ``GmemMount`` with `-o io_uring` (docs/testing.md, "Transports"); unset or `classic`, none.
public enum TestTransport {
    public static let name = ProcessInfo.processInfo.environment["GMEM_TRANSPORT"] ?? "classic"
    public static var isIOUring: Bool { name == "io_uring" }
    /// The arguments every ``GmemMount`` adds.
    public static var arguments: [String] { isIOUring ? ["-o", "io_uring"] : [] }
}

/// A gmemfs daemon mounted on a fresh temporary directory, run as a child in the foreground
/// with `-o auto_unmount` (a crashed daemon leaves no dead mount) through ``DaemonProcess``,
/// the harness `gmemctl tour` uses too. ``unmount()`` (also run on deinit) stops it with
/// SIGTERM and waits, falling back to SIGKILL and a lazy unmount, then removes the directory.
public final class GmemMount: @unchecked Sendable {
    public let path: String
    public let daemon: DaemonProcess
    /// The daemon's stdout and stderr go to a file beside the mountpoint.
    public let logPath: String
    private var removed = false

    /// What the daemon has logged so far.
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Mounts with `arguments` (e.g. `["--file", "f:16K:mmap", "--guest-view"]`).
    public init(_ arguments: [String] = [], timeout: TimeInterval = 20) throws {
        guard FUSE.available else { throw HarnessError("FUSE is not available") }
        let dir = try makeTemporaryDirectory("gmemfs-test")
        path = dir + "/mnt"
        logPath = dir + "/gmemfs.log"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let executable = binDirectory() + "/gmemfs"
        do {
            daemon = try DaemonProcess(executable: executable, arguments: ["-o", "auto_unmount"] + TestTransport.arguments + arguments,
                                       mountpoint: path, logPath: logPath, timeout: timeout)
        } catch DaemonProcess.StartError.exited(let status) {
            let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            try? FileManager.default.removeItem(atPath: dir)
            throw HarnessError("gmemfs (\(executable)) exited (\(status)) before mounting: \(log)")
        } catch DaemonProcess.StartError.timedOut {
            try? FileManager.default.removeItem(atPath: dir)
            throw HarnessError("gmemfs did not mount within \(timeout)s")
        }
        // An io_uring run must not pass on a silent fallback: once INIT is answered (a stat
        // waits for it) the daemon has said which transport serves.
        // (Not for a test that sends the log elsewhere or asks for a fallback itself.)
        let logElsewhere = arguments.contains { $0 == "--log-file" || $0.contains("log_file=") }
        if TestTransport.isIOUring && !arguments.contains("--io-uring") && !logElsewhere {
            _ = access(path + "/.", F_OK)
            var said = false
            for _ in 0..<500 where !said {
                said = log.contains("io_uring: serving over") || log.contains("io_uring not used")
                if !said { usleep(10_000) }
            }
            if !log.contains("io_uring: serving over") {
                let log = self.log
                unmount()
                throw HarnessError("GMEM_TRANSPORT=io_uring but the daemon does not serve over io_uring: \(log)")
            }
        }
    }

    deinit { unmount() }

    public static func isMounted(_ path: String) -> Bool { DaemonProcess.isMounted(path) }

    public var process: Process { daemon.process }
    public func file(_ name: String) -> String { "\(path)/\(name)" }
    public func guest(_ name: String) -> String { "\(path)/.guest/\(name)" }
    public var isAlive: Bool { daemon.isRunning }
    public var pid: pid_t { daemon.pid }

    /// Stops the daemon (``DaemonProcess/stop(signal:)``) and removes the temporary directory.
    /// Idempotent. Returns the daemon's exit status (or 128+signal).
    @discardableResult
    public func unmount(signal sig: Int32 = SIGTERM) -> Int32 {
        let status = daemon.stop(signal: sig)
        if !removed {
            removed = true
            try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent)
        }
        return status
    }
}
