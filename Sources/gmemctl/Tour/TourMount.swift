import Foundation
import Glibc
import GmemDaemonProcess

/// The tour's own gmemfs: the `gmemfs` binary beside this executable, run in the foreground
/// with `--guest-view -o auto_unmount` on a fresh temporary directory through
/// ``DaemonProcess`` (the harness the tests use too). ``unmount()`` runs on every path: normal
/// end, thrown errors, and SIGINT/SIGTERM/SIGHUP (see ``installCleanup()``).
final class TourMount {
    let directory: String
    let mountpoint: String
    let logPath: String
    private var daemon: DaemonProcess?

    init() throws {
        let executable = try Executables.gmemfs(otherwise: "give a MOUNTPOINT of a running gmemfs --guest-view instead")
        var template = Array("/tmp/gmemctl-tour.XXXXXX".utf8CString)
        guard let dir = mkdtemp(&template) else { throw SystemError("mkdtemp /tmp/gmemctl-tour.XXXXXX") }
        directory = String(cString: dir)
        mountpoint = directory + "/mnt"
        logPath = directory + "/gmemfs.log"
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: false)
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        // The handler needs the paths before any signal can arrive; the pid once it is spawned.
        Self.active = (0, strdup(mountpoint), strdup(logPath), strdup(directory))
        do {
            daemon = try DaemonProcess(executable: executable, arguments: ["--guest-view", "-o", "auto_unmount", "--file", "gmem:1M:mmap"],
                                       mountpoint: mountpoint, logPath: logPath, timeout: 20,
                                       started: { Self.active?.pid = $0 })
        } catch {
            let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            unmount()
            throw Failure("gmemfs did not mount on \(mountpoint): \(text)")
        }
    }

    deinit { unmount() }

    static func isMounted(_ path: String) -> Bool { DaemonProcess.isMounted(path) }

    /// Stops the daemon (``DaemonProcess/stop(signal:)``: SIGTERM, which unmounts; after 10 s
    /// SIGKILL and `fusermount3 -u -z`) and removes the temporary directory. Idempotent.
    func unmount() {
        daemon?.stop()
        daemon = nil
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
            if let a = TourMount.active, a.pid > 0 {
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
