/// The text form of an event: one line of `MOUNTPOINT/.trace` (docs/trace.md).
///
/// `TIME FILE EVENT START-END PID COMM OUTCOME DURATION [KEY=VALUE...]`
///
/// - TIME: CLOCK_MONOTONIC seconds with microseconds (`5123.004211`), when the event completed;
/// - FILE, COMM: bytes up to space, control bytes, DEL and `\` as `\xHH` (so fields never
///   contain blanks); COMM is `-` when the process is gone, PID is `-` when unknown (0);
/// - START-END: lowercase hex byte offsets, END exclusive (as in `user.gmem.attributes`);
/// - OUTCOME: `ok`, `unchanged`, `became-private`, `became-shared` or an errno (`EACCES`);
/// - DURATION: microseconds with one decimal (`38.2us`), or `-`.
extension Event {
    public var traceLine: String {
        var s = Self.timestamp(time)
        s += " " + Self.escape(file) + " " + kind.rawValue
        s += " " + String(offset, radix: 16) + "-" + String(offset &+ length, radix: 16)
        s += " " + (requester.pid == 0 ? "-" : String(requester.pid))
        s += " " + (requester.comm.isEmpty ? "-" : Self.escape(requester.comm))
        s += " " + outcome.name
        s += " " + (duration.map(Self.microseconds) ?? "-")
        if !detail.isEmpty { s += " " + detail }
        return s + "\n"
    }

    /// The line a reader gets for `n` events its ring dropped.
    public static func lostLine(_ n: UInt64) -> String { "lost \(n) events\n" }

    /// `seconds.micros` of a monotonic nanosecond time.
    public static func timestamp(_ ns: UInt64) -> String {
        let micros = String(ns / 1000 % 1_000_000)
        return String(ns / 1_000_000_000) + "." + String(repeating: "0", count: 6 - micros.count) + micros
    }

    /// `12.3us`.
    public static func microseconds(_ ns: UInt64) -> String {
        let tenths = (ns + 50) / 100
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
}
