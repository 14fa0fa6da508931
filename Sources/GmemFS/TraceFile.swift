import FuseKit
import Glibc
import GmemABI
import GmemCore
import LinuxProc
import Synchronization

/// `MOUNTPOINT/.trace`: the live event trace, in the style of the kernel's `trace_pipe`
/// (docs/trace.md).
///
/// Contract:
/// - Each open subscribes to the ``EventHub``: it gets every event from that moment, as text
///   lines (``Event/traceLine``), each exactly once; nothing is shared between opens.
/// - A READ with nothing to return is **parked**: the worker thread returns to the loop at once
///   (so blocked readers never hold the loop's threads), and the reply is answered later by the
///   flusher thread or by an interrupt. Parked READs are answered at most ``flushInterval``
///   after an event arrives while events flow, ``idleInterval`` after a quiet spell; READs are
///   not answered early for a few events, so that a busy trace costs one READ per batch.
/// - A reader that falls behind loses its oldest events (the hub's ring is bounded) and reads a
///   `lost N events` line in their place; emitting never waits for a reader.
/// - A signal to a parked reader (FUSE_INTERRUPT) answers EINTR when it would end the process
///   or run a handler; a stop signal (SIGSTOP, SIGTSTP, …) or one whose default is to be ignored
///   leaves the READ parked (an EINTR would make `cat` fail after SIGCONT), and the flusher
///   re-checks such READs every ``signalRecheck`` so that a later kill still ends the wait.
///
/// Locking: `readers` is taken after a request's own libfuse lock (the interrupt callback runs
/// under it) and before the hub's; replies are written under `readers`, which only libfuse's
/// session lock follows.
final class TraceFile: Sendable {
    /// How long an event may wait before a parked READ is answered while events flow.
    static let flushInterval: UInt32 = 2_000    // µs
    /// The flusher's period once a round found nothing to answer (an idle `cat .trace` costs
    /// 50 wake-ups a second, not 500); the first event after a quiet spell waits at most this.
    static let idleInterval: UInt32 = 20_000    // µs
    /// How often a READ kept parked after a stop signal is checked for a later fatal one.
    static let signalRecheck: UInt64 = 100_000_000   // ns

    /// One open of `.trace`. Not Sendable: it lives in ``TraceFile/readers``' table and is
    /// reached only inside that lock (the compiler keeps it there).
    final class Reader {
        let subscription: EventHub.Subscription
        /// Formatted text that did not fit the last reply.
        var carry: [UInt8] = []
        var parked: Reply<DataReply>?
        var parkedID: RequestID?
        var parkedSize = 0
        var parkedTID: pid_t = 0
        /// The parked READ was interrupted by a signal that does not end the process.
        var interruptKept = false
        init(_ s: EventHub.Subscription) { subscription = s }
    }

    struct Readers: ~Copyable {
        var byHandle: [FuseFileHandle: Reader] = [:]
        var nextHandle: UInt64 = 1
        var flusherRunning = false
        /// Interrupts that arrived before their READ was parked.
        var earlyInterrupts: Set<RequestID> = []
        /// The session is ending (``end()``): every READ is answered at once with end-of-file.
        var ended = false
    }

    /// The readers' state behind one lock (a class, so that the interrupt handler can hold it).
    final class ReaderTable: Sendable {
        private let state = Mutex(Readers())
        func withLock<R>(_ body: (inout sending Readers) -> sending R) -> sending R { state.withLock(body) }
    }

    let events: EventHub
    let readers = ReaderTable()
    /// Lives as long as the file system: libfuse holds it unretained for every registered READ.
    let interrupts: InterruptHandler

    init(events: EventHub) {
        self.events = events
        let readers = self.readers
        interrupts = InterruptHandler { id in TraceFile.interrupted(id, readers) }
    }

    // MARK: - Requests

    /// Subscribes a new reader; returns its handle.
    func open() -> FuseFileHandle {
        let subscription = events.subscribe()
        let (handle, startFlusher) = readers.withLock { r -> (FuseFileHandle, Bool) in
            let h = FuseFileHandle(r.nextHandle)
            r.nextHandle += 1
            r.byHandle[h] = Reader(subscription)
            defer { r.flusherRunning = true }
            return (h, !r.flusherRunning)
        }
        if startFlusher, !startThread({ [self] in flushLoop() }) {
            readers.withLock { $0.flusherRunning = false }   // the next open tries again
        }
        return handle
    }

    func release(handle: FuseFileHandle) {
        let subscription = readers.withLock { r -> EventHub.Subscription? in
            guard let reader = r.byHandle.removeValue(forKey: handle) else { return nil }
            // The kernel releases only once every READ of the file has returned.
            reader.parked.take()?.error(.interrupted("the reader closed .trace"))
            return reader.subscription
        }
        if let subscription { events.unsubscribe(subscription) }
    }

    func read(_ ctx: RequestContext, handle: FuseFileHandle, size: Int, reply: consuming Reply<DataReply>) {
        let id = reply.id
        readers.withLock { _ = $0.earlyInterrupts.remove(id) }   // a stale mark of a freed request
        reply.notifyInterrupt(to: interrupts)
        var pending = PendingReply(reply)
        readers.withLock { r in
            guard let reader = r.byHandle[handle] else { return pending.answer { $0.error(.badHandle("no .trace reader \(handle)")) } }
            if r.ended { return pending.answer { $0.data(UnsafeRawBufferPointer(start: nil, count: 0)) } }
            let interrupted = r.earlyInterrupts.remove(id) != nil
            if interrupted, !Self.onlyStopOrIgnoredSignals(ctx.pid) { return pending.answer { $0.error(.interrupted("signal before the READ was parked")) } }
            let waiting = events.pending(reader.subscription)
            if !reader.carry.isEmpty || waiting.lost || waiting.events >= events.capacity / 2 {
                if let reply = pending.take() { answer(reader, reply, size: size) }
                return
            }
            reader.parked = pending.take()
            reader.parkedID = id
            reader.parkedSize = size
            reader.parkedTID = ctx.pid
            reader.interruptKept = interrupted
        }
    }

    /// The session is ending: every parked READ is answered with end-of-file now, while the
    /// connection is still open (later the kernel would fail it with ECONNABORTED), so a
    /// `cat .trace` ends as at the end of a file when the mount goes away cleanly.
    func end() {
        readers.withLock { r in
            r.ended = true
            for reader in r.byHandle.values {
                reader.parkedID = nil
                reader.parked.take()?.data(UnsafeRawBufferPointer(start: nil, count: 0))
            }
        }
    }

    /// Answers `reply` with up to `size` bytes of the reader's lines. Call under `readers`.
    private func answer(_ reader: Reader, _ reply: consuming Reply<DataReply>, size: Int) {
        var out = reader.carry
        reader.carry = []
        while out.count < size {
            let (lost, batch) = events.drain(reader.subscription, max: 256)
            if lost > 0 { out += Event.lostLine(lost).utf8 }
            if batch.isEmpty { break }
            for e in batch { out += e.traceLine.utf8 }
        }
        if out.count > size {
            reader.carry = Array(out[size...])
            out.removeSubrange(size...)
        }
        var pending = PendingReply(reply)
        out.withUnsafeBytes { bytes in pending.answer { $0.data(bytes) } }
    }

    /// FUSE_INTERRUPT for `id` (under the request's libfuse lock).
    private static func interrupted(_ id: RequestID, _ readers: ReaderTable) {
        readers.withLock { r in
            guard let reader = r.byHandle.values.first(where: { $0.parkedID == id && $0.parked != nil }) else {
                r.earlyInterrupts.insert(id)   // not parked yet (or already answered: harmless)
                return
            }
            if Self.onlyStopOrIgnoredSignals(reader.parkedTID) {
                reader.interruptKept = true
            } else {
                reader.parkedID = nil
                reader.parked.take()!.error(Self.signalled)
            }
        }
    }

    // MARK: - Flusher

    /// Answers parked READs that have something to say, every ``flushInterval``, until the last
    /// reader closes.
    private func flushLoop() {
        var busy = true
        var lastRecheck = Event.now()
        while true {
            usleep(busy ? Self.flushInterval : Self.idleInterval)
            let now = Event.now()
            let recheck = now &- lastRecheck >= Self.signalRecheck
            if recheck { lastRecheck = now }
            let (done, answered) = readers.withLock { r -> (Bool, Bool) in
                if r.byHandle.isEmpty { r.flusherRunning = false; return (true, false) }
                var answered = false
                for reader in r.byHandle.values {
                    let waiting = events.pending(reader.subscription)
                    let hasData = !reader.carry.isEmpty || waiting.events > 0 || waiting.lost
                    if hasData { answered = true }   // (an unparked reader with data keeps the pace too)
                    guard reader.parked != nil else { continue }
                    if hasData {
                        reader.parkedID = nil
                        answer(reader, reader.parked.take()!, size: reader.parkedSize)
                    } else if recheck, reader.interruptKept, !Self.onlyStopOrIgnoredSignals(reader.parkedTID) {
                        reader.parkedID = nil
                        reader.parked.take()!.error(Self.signalled)
                    }
                }
                return (false, answered)
            }
            if done { return }
            busy = answered
        }
    }

    // MARK: - Signals

    static let signalled = GmemError.interrupted("a signal ended the parked READ")

    /// Whether every signal pending for thread `tid` leaves it waiting: none is SIGKILL, caught,
    /// or fatal by default. False when the thread cannot be inspected (gone: nobody waits).
    static func onlyStopOrIgnoredSignals(_ tid: pid_t) -> Bool {
        guard tid > 0, let status = ProcFiles.readStatus(tid) else { return false }
        func mask(_ key: String) -> UInt64 { status.signalMask(key) ?? 0 }
        let deliverable = (mask("SigPnd") | mask("ShdPnd")) & ~mask("SigBlk")
        let harmless: Set<Int32> = [SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU, SIGCHLD, SIGCONT, SIGURG, SIGWINCH]
        let ignored = mask("SigIgn"), caught = mask("SigCgt")
        for sig in Int32(1)...64 where deliverable & (1 << UInt64(sig - 1)) != 0 {
            let bit = UInt64(1) << UInt64(sig - 1)
            if sig == SIGKILL || caught & bit != 0 { return false }
            if ignored & bit == 0 && !harmless.contains(sig) { return false }
        }
        return true
    }
}

/// Runs `body` on a new detached thread; false if none could be made.
func startThread(_ body: @escaping @Sendable () -> Void) -> Bool {
    final class Work: Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let context = Unmanaged.passRetained(Work(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(&thread, nil, { context in
        Unmanaged<Work>.fromOpaque(context!).takeRetainedValue().body()
        return nil
    }, context)
    guard rc == 0 else { Unmanaged<Work>.fromOpaque(context).release(); return false }
    pthread_detach(thread)
    return true
}
