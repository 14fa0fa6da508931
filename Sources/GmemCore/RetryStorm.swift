import LinuxProc

/// What a task that sent a FUSE request is doing, read from `/proc/TID/syscall` while the task
/// waits for the reply.
///
/// The kernel's populate loop (`__mm_populate`, behind `mmap(MAP_POPULATE|MAP_LOCKED)`, `mlock`,
/// `mlock2`, `mlockall`, `mremap` of a locked mapping and `remap_file_pages`) retries a failed
/// page read forever: `filemap_fault` drops the mmap lock for the read and answers "retry", and
/// the loop starts over at the same address without ever getting SIGBUS. Only a fatal signal
/// ends it, and SIGKILL is the only one that works whatever the task's dispositions: a SIGBUS
/// (a core-dumping signal) stays pending until the syscall returns, which it never does.
/// A task blocked in one of these syscalls on a refused READ is caught in that loop.
public enum RequesterState: Equatable, Sendable {
    /// Blocked in a syscall whose populate loop never gives up (the syscall number).
    case populating(syscall: Int)
    /// Blocked in another syscall (`read`, `pread64`, `madvise`, …): it returns an error itself.
    case otherSyscall(Int)
    /// Not in a syscall (`-1 …`): a page fault from user mode, which ends in SIGBUS by itself.
    case userFault
    /// Running, or text this parser does not know: nothing can be concluded.
    case unknown

    /// Classifies a thread's parsed `/proc/TID/syscall` (LinuxProc's ``ProcSyscall``; nil when it
    /// could not be read or parsed). Total: what cannot be concluded is ``unknown``.
    public init(_ syscall: ProcSyscall?) {
        switch syscall {
        case .blocked(let number, _)?:
            self = SyscallNumber.populateFamily.contains(number) ? .populating(syscall: number) : .otherSyscall(number)
        case .notInSyscall?: self = .userFault
        case .running?, nil: self = .unknown
        }
    }
}

/// Recognises a populate retry storm — the same task refused the same READ again and again, from
/// inside a populate syscall — and says when to end it. Pure bookkeeping (times are passed in, in
/// nanoseconds); the caller reads `/proc` and sends the signal.
///
/// Protocol, per refused READ: ``refused(tid:request:now:)``; when it returns true, read the
/// task's state and call ``decide(tid:state:)``; true means: end the task.
///
/// - A task is inspected only after `repeats` identical refusals, each within `window` of the
///   previous one: a populate loop repeats its READ thousands of times a second, while readahead
///   that merely spans a private page is refused a few times and moves on.
/// - Only a task in a populate syscall is ended, once: refusals that continue its storm until the
///   signal lands are ignored; a new storm needs a pause longer than `window`. Any other state (a `pread` loop, a user-mode
///   fault, a running task) is never signalled, and is inspected again `repeats` refusals later.
///
/// At most `capacity` tasks are tracked; the least recently refused one is forgotten first.
public struct RetryStormDetector: Sendable {
    /// A refused READ: which file, where, how much.
    public struct Request: Hashable, Sendable {
        public var inode: UInt64, offset: Int, size: Int
        public init(inode: UInt64, offset: Int, size: Int) { self.inode = inode; self.offset = offset; self.size = size }
    }

    struct Record {
        var request: Request
        var count: Int
        var last: UInt64
        /// Ended: its remaining refusals (until the signal lands) are not a new storm.
        var ended = false
    }

    public let repeats: Int
    public let window: UInt64
    public let capacity: Int
    var records: [Int32: Record] = [:]

    public init(repeats: Int = 8, window: UInt64 = 100_000_000, capacity: Int = 64) {
        self.repeats = max(1, repeats); self.window = window; self.capacity = max(1, capacity)
    }

    /// Number of tasks tracked (never more than `capacity`).
    public var trackedTasks: Int { records.count }

    /// Records a refused READ sent by `tid`. True when the task should be inspected now.
    public mutating func refused(tid: Int32, request: Request, now: UInt64) -> Bool {
        var r: Record
        if let old = records[tid], old.request == request, now >= old.last, now - old.last <= window {
            r = old
            r.count += 1
            r.last = now
            if r.ended { records[tid] = r; return false }
        } else {
            if records[tid] == nil, records.count >= capacity { evictOldest() }
            r = Record(request: request, count: 1, last: now)
        }
        records[tid] = r
        return r.count >= repeats
    }

    /// Whether to end `tid`, inspected after ``refused(tid:request:now:)`` returned true.
    public mutating func decide(tid: Int32, state: RequesterState) -> Bool {
        guard let r = records[tid], !r.ended else { return false }
        guard case .populating = state else {
            records[tid]?.count = 0   // look again `repeats` refusals later
            return false
        }
        records[tid]?.ended = true
        return true
    }

    /// Forgets `tid`: its next refusal starts a new storm (after a storm was answered some other
    /// way than by ending the task).
    public mutating func forget(tid: Int32) { records[tid] = nil }

    mutating func evictOldest() {
        if let oldest = records.min(by: { $0.value.last < $1.value.last }) { records[oldest.key] = nil }
    }
}
