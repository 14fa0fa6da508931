import Foundation
import Glibc

/// The tour's own gmemfs: the `gmemfs` binary beside this executable, run in the foreground
/// with `--guest-view -o auto_unmount` on a fresh temporary directory. ``unmount()`` runs on
/// every path: normal end, thrown errors, and SIGINT/SIGTERM/SIGHUP (see ``installCleanup()``).
final class TourMount {
    let directory: String
    let mountpoint: String
    let process: Process
    let logPath: String
    private var stopped = false

    init() throws {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let daemon = (exe as NSString).deletingLastPathComponent + "/gmemfs"
        guard access(daemon, X_OK) == 0 else { throw Failure("cannot find gmemfs beside gmemctl (looked for \(daemon)); give a MOUNTPOINT of a running gmemfs --guest-view instead") }
        var template = Array("/tmp/gmemctl-tour.XXXXXX".utf8CString)
        guard let dir = mkdtemp(&template) else { throw SystemError("mkdtemp /tmp/gmemctl-tour.XXXXXX") }
        directory = String(cString: dir)
        mountpoint = directory + "/mnt"
        logPath = directory + "/gmemfs.log"
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: false)
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process = Process()
        process.executableURL = URL(fileURLWithPath: daemon)
        process.arguments = ["-f", "--guest-view", "-o", "auto_unmount", "--file", "gmem:1M:mmap", mountpoint]
        let log = FileHandle(forWritingAtPath: logPath)
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        Self.active = (process.processIdentifier, strdup(mountpoint), strdup(logPath), strdup(directory))
        let deadline = Date().addingTimeInterval(20)
        while !Self.isMounted(mountpoint) {
            if !process.isRunning || Date() > deadline {
                let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
                unmount()
                throw Failure("gmemfs did not mount on \(mountpoint): \(text)")
            }
            usleep(10_000)
        }
    }

    deinit { unmount() }

    static func isMounted(_ path: String) -> Bool {
        guard let mounts = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8) else { return false }
        return mounts.split(separator: "\n").contains { $0.split(separator: " ").dropFirst().first.map(String.init) == path }
    }

    /// Stops the daemon (SIGTERM, which unmounts; after 10 s SIGKILL and `fusermount3 -u -z`)
    /// and removes the temporary directory. Idempotent.
    func unmount() {
        if stopped { return }
        stopped = true
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            let deadline = Date().addingTimeInterval(10)
            while process.isRunning && Date() < deadline { usleep(5_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        }
        if Self.isMounted(mountpoint) {
            let f = Process()
            f.executableURL = URL(fileURLWithPath: "/bin/fusermount3")
            f.arguments = ["-u", "-z", mountpoint]
            try? f.run()
            f.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
        Self.active = nil
    }

    /// What the signal handler must clean up: daemon pid, mount point, log file, directory
    /// (C strings made before any signal can arrive).
    nonisolated(unsafe) static var active: (pid: pid_t, mountpoint: UnsafeMutablePointer<CChar>?,
                                            log: UnsafeMutablePointer<CChar>?, directory: UnsafeMutablePointer<CChar>?)?

    /// On SIGINT/SIGTERM/SIGHUP: stop the daemon (it unmounts on SIGTERM), wait for it, remove
    /// the temporary files, and exit 128+signal. Only async-signal-safe calls.
    static func installCleanup() {
        let handler: @convention(c) (Int32) -> Void = { sig in
            if let a = TourMount.active {
                kill(a.pid, SIGTERM)
                var status: Int32 = 0
                waitpid(a.pid, &status, 0)
                // Foundation may have reaped it first: wait until it is gone (at most 10 s).
                var pause = timespec(tv_sec: 0, tv_nsec: 10_000_000)
                for _ in 0..<1000 where kill(a.pid, 0) == 0 { nanosleep(&pause, nil) }
                if let m = a.mountpoint { rmdir(m) }
                if let l = a.log { unlink(l) }
                if let d = a.directory { rmdir(d) }
            }
            _exit(128 + sig)
        }
        signal(SIGINT, handler)
        signal(SIGTERM, handler)
        signal(SIGHUP, handler)
    }
}
