import CSeccomp
import Glibc

/// The janitor process (CSeccomp's `cseccomp_janitor`): started first, told each thing `run`
/// makes as soon as it exists, and told "done" once `run` has cleaned up itself. If gmemctl
/// ends any other way (SIGKILL included) the janitor sees its pipe close and removes
/// everything: COMMAND's process group, the daemon, the mount, the temporary files.
final class Janitor {
    private let pipe: Int32

    init() throws {
        var fd: Int32 = -1
        guard cseccomp_janitor(&fd) > 0 else { throw SystemError("fork (janitor)") }
        pipe = fd
    }

    func processGroup(_ pgid: pid_t) { say("pgid \(pgid)") }
    func daemon(_ pid: pid_t) { say("daemon \(pid)") }
    func mount(_ path: String) { say("mount \(path)") }
    func file(_ path: String) { say("file \(path)") }
    func directory(_ path: String) { say("dir \(path)") }

    /// Everything is cleaned up: the janitor exits without touching anything.
    func done() {
        say("done")
        close(pipe)
    }

    private func say(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { write(pipe, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            sent += n
        }
    }
}
