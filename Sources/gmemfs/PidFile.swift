import Glibc
import Logging

/// `--pid-file`: the daemon's pid, written once the mount is live.
enum PidFile {
    /// Writes `getpid()` and a newline to `path` atomically (a temporary file renamed over it):
    /// a reader sees no file or the whole pid. Logs and returns false on failure.
    static func write(_ path: String, logger: Logger) -> Bool {
        let temporary = path + ".tmp"
        let text = Array("\(getpid())\n".utf8)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            logger.error("cannot write pid file \(path): \(String(cString: strerror(errno)))")
            return false
        }
        let written = Glibc.write(fd, text, text.count)
        close(fd)
        guard written == text.count, rename(temporary, path) == 0 else {
            logger.error("cannot write pid file \(path): \(String(cString: strerror(errno)))")
            unlink(temporary)
            return false
        }
        return true
    }
}
