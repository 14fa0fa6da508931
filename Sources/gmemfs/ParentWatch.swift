import CLinuxSys
import Glibc

/// `--exit-with-parent` (as nbdkit's): the daemon ends, unmounting cleanly, once the process that
/// started gmemfs exits, however it ends (SIGKILL included).
///
/// The watch is a pidfd on the original parent, opened by ``open()`` before daemonizing: a daemon's
/// own parent is the short-lived foreground gmemfs, and PR_SET_PDEATHSIG follows the thread
/// that forked, not the process. ``start(_:)`` then waits on it in a thread of the serving process
/// and, when it becomes readable (the parent exited), sends SIGTERM to this process: the same
/// clean unmount and exit 0 as a SIGTERM from outside.
enum ParentWatch {
    /// A pidfd on `getppid()`. Refuses when the parent has already exited (this process was
    /// reparented, so `getppid()` changed under the open) or pidfd_open is unavailable.
    static func open() throws(MountRefusal) -> Int32 {
        let parent = getppid()
        let fd = pidfd_open(parent, 0)   // pidfds are always close-on-exec
        guard fd >= 0 else {
            throw MountRefusal(description: "--exit-with-parent: cannot watch the parent (pid \(parent)): \(String(cString: strerror(errno)))")
        }
        // A pidfd opened while `parent` is still our parent names it, not a reused pid.
        guard getppid() == parent, parent > 1 else {
            close(fd)
            throw MountRefusal(description: "--exit-with-parent: the parent process has already exited")
        }
        return fd
    }

    /// Starts the watching thread (call in the process that serves the mount, after the signal
    /// handlers are installed and after any fork). `fd` is never closed: it lives as long as the process.
    static func start(_ fd: Int32) -> Bool {
        var thread = pthread_t()
        // The descriptor travels in the pointer, plus one so that fd 0 is not a null pointer.
        let rc = pthread_create(&thread, nil, { arg in
            var watched = pollfd(fd: Int32(Int(bitPattern: arg) - 1), events: Int16(POLLIN), revents: 0)
            while poll(&watched, 1, -1) < 0 && errno == EINTR {}
            kill(getpid(), SIGTERM)
            return nil
        }, UnsafeMutableRawPointer(bitPattern: Int(fd) + 1))
        guard rc == 0 else { return false }
        pthread_detach(thread)
        return true
    }
}
