import CLinuxSys
import Glibc
import GmemCore
import Logging
import Synchronization

/// Ends the kernel's endless populate loop on a private page (docs/semantics.md, "Populating
/// and locking private pages"): the looping task gets SIGKILL, the one signal that ends it.
/// The thread is identified by the request's pid, which FUSE fills with the caller's thread id.
///
/// Consulted only for refused host READs of buffered files (a private page, or a page past the
/// memory cap); the bookkeeping lock is held for a
/// dictionary update, never across a system call.
final class PopulateGuard: Sendable {
    /// A SIGKILL decided while the requester waits for the reply. Sent before the reply: the
    /// killed task still waits (uninterruptibly) for it, and the reply then ends its request.
    struct PendingKill: ~Copyable {
        let pidfd: Int32
        consuming func send() {
            _ = pidfd_send_signal(pidfd, SIGKILL, nil, 0)
            close(pidfd)
        }
    }

    let detector = Mutex(RetryStormDetector())
    /// Tasks ended so far (`user.gmem.stats` on the root: `populate_kills`).
    let kills = Atomic<Int>(0)
    let warnedUnreadable = Atomic<Bool>(false)
    let logger: Logger

    init(logger: Logger) { self.logger = logger }

    /// A host READ of `f` was refused (`why`: for a private page, or for a page past the memory
    /// cap). Call before replying: the requester `tid` is then blocked in the kernel on this very
    /// request, so its syscall is stable.
    func refused(tid: pid_t, file f: FileNode, offset: Int, size: Int, why: String) -> PendingKill? {
        guard tid > 0 else { return nil }   // 0: the requester is outside the daemon's pid namespace
        let request = RetryStormDetector.Request(inode: f.hostInode, offset: offset, size: size)
        guard detector.withLock({ $0.refused(tid: tid, request: request, now: Self.now()) }) else { return nil }
        // The pidfd pins the task's identity: if it exits and the tid is reused, the signal
        // fails instead of reaching another task.
        var pidfd = pidfd_open(tid, UInt32(CLINUX_PIDFD_THREAD))
        if pidfd < 0 && errno == EINVAL { pidfd = pidfd_open(tid, 0) }   // kernels before 6.9: leaders only
        guard pidfd >= 0 else { return nil }
        let text = Self.readProc("/proc/\(tid)/syscall")
        if text == nil, !warnedUnreadable.exchange(true, ordering: .relaxed) {
            logger.warning("cannot read /proc/\(tid)/syscall (\(String(cString: strerror(errno)))): populate loops on private pages cannot be ended")
        }
        let state = text.map(RequesterState.init(procSyscall:)) ?? .unknown
        guard detector.withLock({ $0.decide(tid: tid, state: state) }) else {
            close(pidfd)
            return nil
        }
        kills.add(1, ordering: .relaxed)
        let comm = Self.readProc("/proc/\(tid)/comm")?.split(separator: "\n").first.map(String.init) ?? "?"
        logger.info("SIGKILL to task \(tid) (\(comm)): \(state), retrying \(why) of \(f.name) at offset \(offset) endlessly")
        return PendingKill(pidfd: pidfd)
    }

    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// The text of a small /proc file, nil (errno set) when it cannot be read.
    static func readProc(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n >= 0 else { return nil }
        return String(decoding: buffer[..<n], as: UTF8.self)
    }
}
