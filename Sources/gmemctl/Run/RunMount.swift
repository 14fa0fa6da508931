import CSeccomp
import Foundation
import Glibc
import GmemDaemonProcess

/// `run`'s private gmemfs: the `gmemfs` beside this executable, in the foreground in its own
/// session (a Ctrl-C meant for COMMAND does not reach it), with `-o auto_unmount`, on
/// `/tmp/gmemctl-run.XXXXXX/mnt`, its output in `gmemfs.log` there. Each path is told to the
/// janitor as soon as it exists. ``remove()`` stops the daemon (SIGTERM: it unmounts), makes sure
/// the mount is gone and removes the directory.
final class RunMount {
    let directory: String
    let mountpoint: String
    let logPath: String
    private var daemonPID: pid_t = 0

    init(options: [String], kernelCompat: Bool, janitor: Janitor) throws {
        let executable = try Executables.gmemfs(otherwise: "give --mount MOUNTPOINT of a running gmemfs instead")
        var template = Array("/tmp/gmemctl-run.XXXXXX".utf8CString)
        guard let dir = mkdtemp(&template) else { throw SystemError("mkdtemp /tmp/gmemctl-run.XXXXXX") }
        directory = String(cString: dir)
        mountpoint = directory + "/mnt"
        logPath = directory + "/gmemfs.log"
        janitor.directory(directory)
        janitor.file(logPath)
        janitor.mount(mountpoint)
        guard mkdir(mountpoint, 0o700) == 0 else {
            let e = errno
            rmdir(directory)
            throw SystemError("mkdir \(mountpoint)", errno: e)
        }
        let log = open(logPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        var arguments = [executable, "-f", "-o", "auto_unmount", "--guest-view"]
        if kernelCompat { arguments.append("--kernel-compat") }
        for o in options { arguments += ["-o", o] }
        arguments.append(mountpoint)
        var cArguments: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        daemonPID = cseccomp_spawn_plain(&cArguments, log)
        if log >= 0 { close(log) }
        guard daemonPID > 0 else { let e = errno; remove(); throw SystemError("fork gmemfs", errno: e) }
        janitor.daemon(daemonPID)
        var waited = 0
        while !DaemonProcess.isMounted(mountpoint) {
            var status: Int32 = 0
            if waitpid(daemonPID, &status, WNOHANG) == daemonPID || waited >= 2000 {
                if waited < 2000 { daemonPID = 0 }
                // fusermount3's reason and gmemfs's "Error:" line (a usage text follows a bad -o).
                let all = ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").split(separator: "\n")
                let errors = all.filter { $0.hasPrefix("fusermount3:") || $0.hasPrefix("Error:") }
                let lines = errors.isEmpty ? Array(all.suffix(2)) : errors
                let text = lines.isEmpty ? "no output" : lines.joined(separator: "; ")
                remove()
                throw Failure("gmemfs did not mount on \(mountpoint) (\(waited >= 2000 ? "timed out after 20 s" : "it exited")): \(text)")
            }
            usleep(10_000)
            waited += 1
        }
    }

    /// Stops the daemon (SIGTERM, after 10 s SIGKILL), lazily unmounts if the mount is still
    /// there, and removes the directory. Idempotent.
    func remove() {
        if daemonPID > 0 {
            kill(daemonPID, SIGTERM)
            var status: Int32 = 0
            var reaped = false
            for _ in 0..<1000 {
                if waitpid(daemonPID, &status, WNOHANG) == daemonPID { reaped = true; break }
                usleep(10_000)
            }
            if !reaped { kill(daemonPID, SIGKILL); waitpid(daemonPID, &status, 0) }
            daemonPID = 0
        }
        if DaemonProcess.isMounted(mountpoint) {
            let candidates: [String] = ["/usr/bin/fusermount3", "/bin/fusermount3"]
            let fusermount: String = candidates.first(where: { access($0, X_OK) == 0 }) ?? "/bin/fusermount3"
            let words: [String] = [fusermount, "-u", "-z", mountpoint]
            var cArguments: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
            defer { cArguments.forEach { free($0) } }
            let pid = cseccomp_spawn_plain(&cArguments, -1)
            var status: Int32 = 0
            if pid > 0 { waitpid(pid, &status, 0) }
        }
        unlink(logPath)
        rmdir(mountpoint)
        rmdir(directory)
    }
}
