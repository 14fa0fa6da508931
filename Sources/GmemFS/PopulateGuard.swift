import CLinuxSys
import Dispatch
import Glibc
import GmemABI
import GmemCore
import LinuxProc
import Logging
import Synchronization

/// Lets the kernel's populate loop over a private page finish (docs/semantics.md, "Populating
/// and locking private pages"). The loop (`mmap(MAP_POPULATE|MAP_LOCKED)`, `mlock`, `mlockall`,
/// …) retries a refused READ forever. Once a thread is seen doing that, the page's READ is
/// answered with **zeros** (never its contents), the loop moves on and the syscall returns; the
/// page is then a *ghost*: a page of zeros in the host's page cache standing for a private page.
/// As soon as the thread has left the syscall (or exited, or at the latest
/// ``ghostLifetime`` after the answer, when the loop is long past it) the ghost is dropped from
/// the page cache and from every mapping (`notify_inval_inode`), so the next access faults again
/// and gets SIGBUS. Until then the ghost reads as zeros; a store into it is discarded at
/// writeback (``FileNode/ghosts``) and a conversion to shared drops it first.
///
/// SIGKILL stays the last resort, for what zeros cannot answer: an unaligned READ storm (page
/// cache READs are page-aligned), and a page past the memory cap (zeros there would be a page
/// no store may land in).
///
/// The thread is identified by the request's pid, which FUSE fills with the caller's thread id.
/// Consulted only for refused host READs of buffered files; the bookkeeping locks are held for
/// dictionary updates, never across a system call.
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

    /// What to do with a refused READ.
    enum Answer: ~Copyable {
        /// Refuse it (the errno the caller would get anyway).
        case refuse
        /// Answer with the range's bytes, zeros for its private pages
        /// (``GuestMemFile/readHidingPrivate(offset:count:allocating:_:)``), mark those pages
        /// as ghosts before replying, then hand them to ``answered(tid:syscall:file:pages:)``.
        case zeros(syscall: Int)
        /// End the task, then refuse.
        case kill(PendingKill)
    }

    /// A page answered with zeros, awaiting its drop.
    struct Ghost: Sendable {
        let id: UInt64
        let tid: pid_t
        /// -1 when the thread could not be pinned (then dropped at once).
        let pidfd: Int32
        let syscall: Int
        let file: FileNode
        let pages: [UInt64]
        let since: UInt64
    }

    /// The longest a ghost lives while its thread cannot be seen out of the syscall (proc(5)
    /// says only "running" for a thread on a CPU, in the syscall or not). A populate loop maps
    /// an answered page within microseconds and never goes back to it; dropping a ghost too
    /// early costs one more READ, answered at once.
    static let ghostLifetime: UInt64 = 10_000_000
    /// How often pending ghosts are checked.
    static let pollInterval = DispatchTimeInterval.milliseconds(1)

    let detector = Mutex(RetryStormDetector())
    /// Threads answered with zeros, by tid: the populate syscall they were in and when. Their
    /// next refused READ within the detector's window is checked at once, not after a storm.
    let populating = Mutex<[pid_t: (syscall: Int, last: UInt64)]>([:])
    let ghosts = Mutex<[Ghost]>([])
    let nextGhost = Atomic<UInt64>(0)
    let reaping = Atomic<Bool>(false)
    let queue = DispatchQueue(label: "gmemfs.populate-ghosts")
    /// Drops pages `[first, first + count)` of a file from the host's page cache and mappings.
    let drop: @Sendable (FileNode, _ first: UInt64, _ count: UInt64) -> Void
    /// Tasks ended so far (`user.gmem.stats` on the root: `populate_kills`).
    let kills = Atomic<Int>(0)
    /// READs answered with zeros so far (`populate_zero_answers`).
    let zeroAnswers = Atomic<Int>(0)
    let warnedUnreadable = Atomic<Bool>(false)
    let logger: Logger

    init(logger: Logger, drop: @escaping @Sendable (FileNode, _ first: UInt64, _ count: UInt64) -> Void) {
        self.logger = logger
        self.drop = drop
    }

    /// Ghosts not yet dropped (`populate_pending`).
    var pendingGhosts: Int { ghosts.withLock { $0.count } }

    /// A host READ of `f` was refused for a private page. Call before replying: the requester
    /// `tid` is then blocked in the kernel on this very request, so its syscall is stable.
    /// `.zeros` for a thread in a populate syscall: at once for one already answered in it (any
    /// page-aligned READ, readahead included), else after a storm of identical refusals.
    func refusedPrivate(tid: pid_t, file f: FileNode, offset: Int, size: Int) -> Answer {
        guard tid > 0 else { return .refuse }   // 0: the requester is outside the daemon's pid namespace
        let now = Self.now()
        let aligned = offset >= 0 && size > 0 && offset % Int(pageSize) == 0
        // A thread already answered in this syscall: check it at once.
        if aligned, let known = populating.withLock({ $0[tid] }), Self.elapsed(since: known.last, now: now) <= detector.withLock({ $0.window }),
           RequesterState(ProcFiles.readSyscall(tid)) == .populating(syscall: known.syscall) {
            populating.withLock { $0[tid] = (known.syscall, now) }
            return .zeros(syscall: known.syscall)
        }
        guard let (pidfd, state) = inspectStorm(tid: tid, file: f, offset: offset, size: size, now: now) else { return .refuse }
        guard aligned, case .populating(let syscall) = state else {
            return kill(pidfd: pidfd, tid: tid, state: state, why: "an unaligned READ over a private page", file: f, offset: offset)
        }
        close(pidfd)
        detector.withLock { $0.forget(tid: tid) }
        populating.withLock { $0[tid] = (syscall, now) }
        let comm = ProcFiles.readComm(tid) ?? "?"
        logger.info("task \(tid) (\(comm)) retries the private page of \(f.name) at offset \(offset) endlessly (\(state)): answering with zeros, dropped once it leaves the syscall")
        return .zeros(syscall: syscall)
    }

    /// The READ was answered with zeros for `pages` (already marked in `f.ghosts`): drop them
    /// once `tid` has left `syscall`.
    func answered(tid: pid_t, syscall: Int, file f: FileNode, pages: [UInt64]) {
        guard !pages.isEmpty else { return }
        var pidfd = pidfd_open(tid, UInt32(CLINUX_PIDFD_THREAD))
        if pidfd < 0 && errno == EINVAL { pidfd = pidfd_open(tid, 0) }
        let ghost = Ghost(id: nextGhost.add(1, ordering: .relaxed).newValue, tid: tid, pidfd: pidfd, syscall: syscall,
                          file: f, pages: pages, since: Self.now())
        ghosts.withLock { $0.append(ghost) }
        zeroAnswers.add(1, ordering: .relaxed)
        startReaping()
    }

    /// A host READ of `f` was refused for a page past the memory cap: a populate loop there is
    /// ended with SIGKILL (zeros would put a page no store may land in into the page cache).
    func refusedPastCap(tid: pid_t, file f: FileNode, offset: Int, size: Int) -> PendingKill? {
        guard tid > 0, let (pidfd, state) = inspectStorm(tid: tid, file: f, offset: offset, size: size, now: Self.now()) else { return nil }
        guard case .kill(let k) = kill(pidfd: pidfd, tid: tid, state: state, why: "a page past the memory cap", file: f, offset: offset) else { return nil }
        return k
    }

    /// After a storm of identical refusals: a pidfd pinning the thread and its state, if it is
    /// in a populate syscall.
    private func inspectStorm(tid: pid_t, file f: FileNode, offset: Int, size: Int, now: UInt64) -> (Int32, RequesterState)? {
        let request = RetryStormDetector.Request(inode: f.hostInode.rawValue, offset: offset, size: size)
        guard detector.withLock({ $0.refused(tid: tid, request: request, now: now) }) else { return nil }
        // The pidfd pins the task's identity: if it exits and the tid is reused, a signal
        // fails instead of reaching another task.
        var pidfd = pidfd_open(tid, UInt32(CLINUX_PIDFD_THREAD))
        if pidfd < 0 && errno == EINVAL { pidfd = pidfd_open(tid, 0) }   // kernels before 6.9: leaders only
        guard pidfd >= 0 else { return nil }
        let syscall = ProcFiles.readSyscall(tid)
        if syscall == nil, !warnedUnreadable.exchange(true, ordering: .relaxed) {
            logger.warning("cannot read \(ProcFiles.syscall(tid)) (\(String(cString: strerror(errno)))): populate loops on private pages cannot be ended")
        }
        let state = RequesterState(syscall)
        guard detector.withLock({ $0.decide(tid: tid, state: state) }) else {
            close(pidfd)
            return nil
        }
        return (pidfd, state)
    }

    private func kill(pidfd: Int32, tid: pid_t, state: RequesterState, why: String, file f: FileNode, offset: Int) -> Answer {
        kills.add(1, ordering: .relaxed)
        let comm = ProcFiles.readComm(tid) ?? "?"
        logger.info("SIGKILL to task \(tid) (\(comm)): \(state), retrying \(why) of \(f.name) at offset \(offset) endlessly")
        return .kill(PendingKill(pidfd: pidfd))
    }

    private func startReaping() {
        guard !reaping.exchange(true, ordering: .acquiringAndReleasing) else { return }
        queue.asyncAfter(deadline: .now() + Self.pollInterval) { [self] in reap() }
    }

    /// Drops every ghost whose thread has left its syscall, exited, or outlived
    /// ``ghostLifetime``; runs again while any remain. The drop happens after the READ's reply
    /// (the ghost was registered before it, and the thread cannot leave the syscall before the
    /// reply), with no lock held.
    private func reap() {
        let now = Self.now()
        let pending = ghosts.withLock { $0 }
        var left: [pid_t: Bool] = [:]
        var done = Set<UInt64>()
        for g in pending {
            let gone: Bool
            if let known = left[g.tid] { gone = known } else {
                gone = Self.hasLeft(pidfd: g.pidfd, tid: g.tid, syscall: g.syscall)
                left[g.tid] = gone
            }
            if gone || Self.elapsed(since: g.since, now: now) > Self.ghostLifetime { done.insert(g.id) }
        }
        // One drop per run of consecutive pages of a file.
        var byFile: [ObjectIdentifier: (file: FileNode, pages: [UInt64])] = [:]
        for g in pending where done.contains(g.id) { byFile[ObjectIdentifier(g.file), default: (g.file, [])].pages += g.pages }
        for (_, entry) in byFile {
            let pages = Set(entry.pages).sorted()
            var i = 0
            while i < pages.count {
                var j = i
                while j + 1 < pages.count, pages[j + 1] == pages[j] + 1 { j += 1 }
                drop(entry.file, pages[i], UInt64(j - i + 1))
                i = j + 1
            }
        }
        for g in pending where done.contains(g.id) {
            g.file.ghosts.withLock { map in
                for page in g.pages { if let n = map[page] { map[page] = n > 1 ? n - 1 : nil } }
            }
            if g.pidfd >= 0 { close(g.pidfd) }
        }
        for (tid, gone) in left where gone { populating.withLock { _ = $0.removeValue(forKey: tid) } }
        let remaining = ghosts.withLock { list in
            list.removeAll { done.contains($0.id) }
            return list.count
        }
        if remaining > 0 {
            queue.asyncAfter(deadline: .now() + Self.pollInterval) { [self] in reap() }
        } else {
            reaping.store(false, ordering: .releasing)
            // A ghost registered between the count and the store would wait for nobody.
            if pendingGhosts > 0 { startReaping() }
        }
    }

    /// Whether the thread has exited or is no longer in `syscall` (a running thread, which
    /// proc(5) cannot tell apart, counts as still in it).
    static func hasLeft(pidfd: Int32, tid: pid_t, syscall: Int) -> Bool {
        guard pidfd >= 0 else { return true }
        var p = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
        if poll(&p, 1, 0) > 0 { return true }   // exited
        guard let state = ProcFiles.readSyscall(tid).map({ RequesterState($0) }) else { return true }
        switch state {
        case .populating(let n): return n != syscall
        case .unknown: return false
        case .userFault, .otherSyscall: return true
        }
    }

    /// `now - since`, 0 when `since` is later (taken by another thread after `now`).
    static func elapsed(since: UInt64, now: UInt64) -> UInt64 { now >= since ? now - since : 0 }

    static func now() -> UInt64 { Event.now() }
}
