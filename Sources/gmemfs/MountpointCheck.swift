import Glibc
import GmemABI
import LinuxMounts

/// Why gmemfs will not mount somewhere: one line for the user, exit status 1.
struct MountRefusal: Error, CustomStringConvertible {
    let description: String
}

/// The checks that run before anything else, so that a start that cannot work says why and
/// leaves nothing behind (no daemon, no log line, no mount).
enum MountpointCheck {
    /// The mountpoint as an absolute path with no symlinks, `.` or `..` (what
    /// `/proc/self/mountinfo` lists, so the read-ahead setting finds the mount), after checking:
    ///
    /// - it exists and is a directory;
    /// - it is not a dead FUSE mount (its daemon gone: stat fails with ENOTCONN);
    /// - it is not already a gmemfs mount (a second daemon would hide the first one's files).
    ///
    /// The last check is race-free against other gmemfs processes: it runs holding an exclusive
    /// `flock` on the directory, and the returned `lock` must stay open until this process has
    /// mounted (then closed, before daemonizing). A gmemfs started at the same moment waits for
    /// the lock and then sees the first one's mount.
    ///
    /// Never called once this process has mounted (a daemon must not ask its own mount).
    static func resolve(_ path: String) throws(MountRefusal) -> (path: String, lock: Int32) {
        let given = GmemfsCommand.absolute(path)
        guard let resolved = realpath(given, nil) else {
            throw refusal(given, errno)
        }
        defer { free(resolved) }
        let mountpoint = String(cString: resolved)
        var st = stat()
        guard stat(mountpoint, &st) == 0 else { throw refusal(mountpoint, errno) }
        guard st.st_mode & S_IFMT == S_IFDIR else {
            throw MountRefusal(description: "\(mountpoint) is not a directory: a mountpoint must be an existing directory")
        }
        let lock = open(mountpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard lock >= 0 else { throw refusal(mountpoint, errno) }
        while flock(lock, LOCK_EX) != 0 {
            guard errno == EINTR else {
                let code = errno
                close(lock)
                throw refusal(mountpoint, code)
            }
        }
        if let mounts = MountInfo.current(), let m = MountInfo.mount(at: mountpoint, in: mounts), m.fileSystemType == GmemFileSystem.type {
            close(lock)
            throw MountRefusal(description: "\(mountpoint) is already a gmemfs mount: unmount it first (fusermount3 -u \(mountpoint)) or choose another directory")
        }
        return (mountpoint, lock)
    }

    static func refusal(_ path: String, _ code: Int32) -> MountRefusal {
        switch code {
        case ENOTCONN:
            MountRefusal(description: "\(path) is a dead FUSE mount (Transport endpoint is not connected; its daemon is gone): run 'fusermount3 -u \(path)' first")
        case ENOENT:
            MountRefusal(description: "\(path) does not exist: a mountpoint must be an existing directory")
        case ENOTDIR:
            MountRefusal(description: "\(path) is not a directory: a mountpoint must be an existing directory")
        default:
            MountRefusal(description: "\(path): \(String(cString: strerror(code)))")
        }
    }
}
