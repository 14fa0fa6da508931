import Glibc
import GmemABI
import SystemPackage

/// One thing gmemfs did, as `MOUNTPOINT/.trace` reports it (docs/trace.md).
///
/// Adding a kind is one case in ``GmemTraceKind`` plus one `EventHub.emit` at the place that
/// does the work.
public struct Event: Sendable, Equatable {
    /// What happened (the kinds are the interface's: ``GmemTraceKind``).
    public typealias Kind = GmemTraceKind

    /// How it ended.
    public enum Outcome: Sendable, Equatable {
        case ok
        case failed(Errno)
        /// Conversions: every page already had the attributes.
        case unchanged
        case becamePrivate
        case becameShared

        /// `ok`, `unchanged`, `became-private`, `became-shared`, or the errno's symbol (`EACCES`).
        public var name: String {
            switch self {
            case .ok: GmemTraceOutcome.ok.rawValue
            case .unchanged: GmemTraceOutcome.unchanged.rawValue
            case .becamePrivate: GmemTraceOutcome.becamePrivate.rawValue
            case .becameShared: GmemTraceOutcome.becameShared.rawValue
            case .failed(let e): GmemErrnoName.symbol(e.rawValue)
            }
        }
    }

    /// The process behind the request (FUSE's request context). `pid` is the calling thread's
    /// id; 0 when the caller is outside the daemon's pid namespace or the request is the
    /// kernel's own (writeback). `comm` is `/proc/PID/comm` when the event happened, "-" if gone.
    public struct Requester: Sendable, Equatable {
        public var pid: Int32
        public var uid: UInt32
        public var gid: UInt32
        public var comm: String
        public init(pid: Int32, uid: UInt32, gid: UInt32, comm: String) {
            self.pid = pid; self.uid = uid; self.gid = gid; self.comm = comm
        }
        /// Nobody (the daemon itself, or a request without a caller).
        public static let none = Requester(pid: 0, uid: 0, gid: 0, comm: "-")
    }

    /// CLOCK_MONOTONIC nanoseconds when the event completed.
    public var time: UInt64
    public var kind: Kind
    /// The file's name.
    public var file: String
    /// The byte range `[offset, offset + length)`.
    public var offset: UInt64
    public var length: UInt64
    public var outcome: Outcome
    /// Nanoseconds the work took, for kinds where it means something (conversions,
    /// invalidations, fallocate, guest writes).
    public var duration: UInt64?
    public var requester: Requester
    /// Extra `key=value` words, space-separated (`via=ioctl to=private`), or empty.
    public var detail: String

    public init(time: UInt64 = Event.now(), kind: Kind, file: String, offset: UInt64, length: UInt64, outcome: Outcome,
                duration: UInt64? = nil, requester: Requester, detail: String = "") {
        self.time = time; self.kind = kind; self.file = file; self.offset = offset; self.length = length
        self.outcome = outcome; self.duration = duration; self.requester = requester; self.detail = detail
    }

    /// CLOCK_MONOTONIC in nanoseconds.
    public static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}
