import Glibc

/// What a trace line reports happened. The raw value is the EVENT field of a ``TraceLine``.
///
/// Adding a kind is one case here plus one emit at the place in the daemon that does the work.
public enum GmemTraceKind: String, CaseIterable, Sendable {
    /// A file was created (`user.gmem.create`); the range is the whole file.
    case create
    /// A name was removed (`unlink`); the memory goes at the last close.
    case remove
    /// A conversion was requested (xattr or ioctl); the outcome says what it did, or its errno.
    case convert
    /// The host's cached pages of the range were dropped and unmapped (`notify_inval_inode`).
    case invalidate
    /// A host READ was refused because the range holds a private page (EACCES; a page
    /// fault's READ too, which the faulting process sees as SIGBUS).
    case readRefused = "read-refused"
    /// A host write was refused because its first page is private (EACCES).
    case writeRefused = "write-refused"
    /// `fallocate(PUNCH_HOLE | KEEP_SIZE)`.
    case punch
    /// `fallocate(KEEP_SIZE)`; ENOSPC past the memory cap.
    case allocate
    /// A write through the guest view (`MOUNTPOINT/.guest/NAME`).
    case guestWrite = "guest-write"
    /// `GMEM_PIN_PAGES`: page references taken through an open file (EFAULT at a private page
    /// through the host view).
    case pin
    /// `GMEM_UNPIN_PAGES`, or the references an open file still held when it was released
    /// (`on=close references=N`).
    case unpin
    /// `user.gmem.inject` armed a fault (`arm=enomem count=N`; the range is an `eagain`'s page)
    /// or cleared them (`clear=all`). A conversion the fault fails is a `convert` event with
    /// `cause=injected-…` and its `error_offset`.
    case inject
}

/// The OUTCOME of a trace line that is not an errno (``GmemErrnoName``).
public enum GmemTraceOutcome: String, CaseIterable, Sendable {
    /// Done (an event that is not a conversion).
    case ok
    /// A conversion that found the range already holding the attributes.
    case unchanged
    case becamePrivate = "became-private"
    case becameShared = "became-shared"
}

/// The symbolic names of errnos: the trace's OUTCOME field and gmemctl's messages (the one
/// table; an errno outside it is written `E` and its number).
public enum GmemErrnoName {
    static let names: [Int32: String] = [
        EPERM: "EPERM", ENOENT: "ENOENT", ESRCH: "ESRCH", EINTR: "EINTR", EIO: "EIO", ENXIO: "ENXIO",
        E2BIG: "E2BIG", EBADF: "EBADF", ECHILD: "ECHILD", EAGAIN: "EAGAIN", ENOMEM: "ENOMEM",
        EACCES: "EACCES", EFAULT: "EFAULT", EBUSY: "EBUSY", EEXIST: "EEXIST", EXDEV: "EXDEV",
        ENODEV: "ENODEV", ENOTDIR: "ENOTDIR", EISDIR: "EISDIR", EINVAL: "EINVAL", ENFILE: "ENFILE",
        EMFILE: "EMFILE", ENOTTY: "ENOTTY", EFBIG: "EFBIG", ENOSPC: "ENOSPC", ESPIPE: "ESPIPE",
        EROFS: "EROFS", EMLINK: "EMLINK", EPIPE: "EPIPE", ERANGE: "ERANGE", ENAMETOOLONG: "ENAMETOOLONG",
        ENOSYS: "ENOSYS", ENODATA: "ENODATA", EOVERFLOW: "EOVERFLOW", EOPNOTSUPP: "EOPNOTSUPP",
        ENOTCONN: "ENOTCONN", ETIMEDOUT: "ETIMEDOUT", ECONNABORTED: "ECONNABORTED",
    ]
    static let numbers = Dictionary(uniqueKeysWithValues: names.map { ($1, $0) })

    /// `EACCES` for 13; `E` and the number for an errno outside the table.
    public static func symbol(_ errno: Int32) -> String { names[errno] ?? "E\(errno)" }

    /// The errno a symbol names (either form ``symbol(_:)`` prints); nil for anything else.
    public static func number(_ symbol: String) -> Int32? {
        if let n = numbers[symbol] { return n }
        guard symbol.hasPrefix("E"), let n = Int32(symbol.dropFirst()), n > 0 else { return nil }
        return n
    }
}

/// One line of `MOUNTPOINT/.trace` (docs/trace.md): what the daemon prints and gmemctl parses.
///
/// `TIME FILE EVENT START-END PID COMM OUTCOME DURATION [KEY=VALUE...]`, or `lost N events`.
///
/// - TIME: CLOCK_MONOTONIC seconds with microseconds (`5123.004211`), when the event completed;
/// - FILE, COMM: bytes up to space, control bytes, DEL and `\` as `\xHH` (so fields never
///   contain blanks); COMM is `-` when the process is gone, PID is `-` when unknown;
/// - EVENT: a ``GmemTraceKind``;
/// - START-END: lowercase hex byte offsets, END exclusive (as in ``AttributeLine``);
/// - OUTCOME: `ok`, `unchanged`, `became-private`, `became-shared` or an errno
///   (``GmemErrnoName``);
/// - DURATION: microseconds with one decimal (`38.2us`), or `-`.
public enum TraceLine: Equatable, Sendable {
    case event(TraceEvent)
    case lost(UInt64)

    /// The line, with its newline.
    public var text: String {
        switch self {
        case .lost(let n): return "lost \(n) events\n"
        case .event(let e):
            var s = e.time + " " + Self.escape(e.file) + " " + e.event
            s += " " + String(e.start, radix: 16) + "-" + String(e.end, radix: 16)
            s += " " + (e.pid.map(String.init) ?? "-")
            s += " " + (e.comm.map(Self.escape) ?? "-")
            s += " " + e.outcome
            s += " " + (e.durationText ?? "-")
            for (k, v) in e.detail { s += " " + k + "=" + v }
            return s + "\n"
        }
    }

    /// Parses one line (without its newline). Validates the whole line first; nil for
    /// anything that is not one of the two forms (a reader prints such lines unchanged rather
    /// than guessing).
    public init?(_ line: Substring) {
        let f = line.split(separator: " ", omittingEmptySubsequences: false)
        if f.count == 3, f[0] == "lost", f[2] == "events", let n = UInt64(f[1]) {
            self = .lost(n)
            return
        }
        guard f.count >= 8, f[0].split(separator: ".").count == 2, f[0].allSatisfy({ $0.isNumber || $0 == "." }),
              let seconds = Double(f[0]), !f[1].isEmpty, !f[2].isEmpty else { return nil }
        let range = f[3].split(separator: "-", omittingEmptySubsequences: false)
        guard range.count == 2, range.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isHexDigit) }),
              let start = UInt64(range[0], radix: 16), let end = UInt64(range[1], radix: 16), start <= end else { return nil }
        let pid: Int32?
        if f[4] == "-" { pid = nil } else if let p = Int32(f[4]), p > 0 { pid = p } else { return nil }
        let duration: Double?
        if f[7] == "-" { duration = nil } else if f[7].hasSuffix("us"), let d = Double(f[7].dropLast(2)) { duration = d } else { return nil }
        var detail: [(String, String)] = []
        for word in f[8...] {
            let kv = word.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard kv.count == 2, !kv[0].isEmpty else { return nil }
            detail.append((String(kv[0]), String(kv[1])))
        }
        var e = TraceEvent(time: String(f[0]), file: Self.unescape(f[1]), event: String(f[2]), start: start, end: end,
                           pid: pid, comm: f[5] == "-" ? nil : Self.unescape(f[5]), outcome: String(f[6]), detail: detail)
        e.seconds = seconds
        e.durationText = duration == nil ? nil : String(f[7])
        self = .event(e)
    }

    /// `seconds.micros` of a monotonic nanosecond time.
    public static func timestamp(nanoseconds ns: UInt64) -> String {
        let micros = String(ns / 1000 % 1_000_000)
        return String(ns / 1_000_000_000) + "." + String(repeating: "0", count: 6 - micros.count) + micros
    }

    /// `12.3us` for a duration in nanoseconds.
    public static func duration(nanoseconds ns: UInt64) -> String {
        let tenths = ns / 100 + (ns % 100 >= 50 ? 1 : 0)
        return String(tenths / 10) + "." + String(tenths % 10) + "us"
    }

    /// Bytes up to space, DEL and `\` become `\xHH`; everything else is kept.
    public static func escape(_ s: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count)
        let hex = Array("0123456789abcdef".utf8)
        for b in s.utf8 {
            if b <= 0x20 || b == 0x7f || b == UInt8(ascii: "\\") {
                out += [UInt8(ascii: "\\"), UInt8(ascii: "x"), hex[Int(b >> 4)], hex[Int(b & 15)]]
            } else {
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Undoes ``escape(_:)``.
    public static func unescape(_ s: Substring) -> String {
        var out: [UInt8] = []
        let b = Array(s.utf8)
        var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "\\"), i + 3 < b.count, b[i + 1] == UInt8(ascii: "x"),
               let v = UInt8(String(decoding: b[(i + 2)...(i + 3)], as: UTF8.self), radix: 16) {
                out.append(v)
                i += 4
            } else {
                out.append(b[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// The fields of one event line (``TraceLine/event(_:)``).
public struct TraceEvent: Equatable, Sendable {
    /// The timestamp as the daemon wrote it (no rounding on the way through).
    public var time: String
    /// ``time`` as a number of seconds.
    public var seconds: Double
    public var file: String
    /// A ``GmemTraceKind`` raw value (a newer daemon's unknown kind is kept as text).
    public var event: String
    public var start: UInt64
    public var end: UInt64
    /// nil: unknown (the kernel's own request, or another pid namespace).
    public var pid: Int32?
    /// nil: the process was gone.
    public var comm: String?
    /// A ``GmemTraceOutcome`` raw value or an errno symbol (``GmemErrnoName``).
    public var outcome: String
    /// The DURATION field (`38.2us`), nil for `-`.
    public var durationText: String?
    public var detail: [(String, String)]

    public init(time: String, file: String, event: String, start: UInt64, end: UInt64, pid: Int32?, comm: String?,
                outcome: String, durationText: String? = nil, detail: [(String, String)] = []) {
        self.time = time; self.seconds = Double(time) ?? 0; self.file = file; self.event = event
        self.start = start; self.end = end; self.pid = pid; self.comm = comm; self.outcome = outcome
        self.durationText = durationText; self.detail = detail
    }

    /// DURATION in microseconds.
    public var durationMicroseconds: Double? { durationText.flatMap { Double($0.dropLast(2)) } }

    public static func == (a: TraceEvent, b: TraceEvent) -> Bool {
        a.time == b.time && a.file == b.file && a.event == b.event && a.start == b.start && a.end == b.end
            && a.pid == b.pid && a.comm == b.comm && a.outcome == b.outcome && a.durationText == b.durationText
            && a.detail.map { $0.0 + "=" + $0.1 } == b.detail.map { $0.0 + "=" + $0.1 }
    }
}
