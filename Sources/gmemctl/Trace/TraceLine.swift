/// One line of `MOUNTPOINT/.trace` (docs/trace.md), parsed.
///
/// `TIME FILE EVENT START-END PID COMM OUTCOME DURATION [KEY=VALUE...]`, or `lost N events`.
enum TraceLine: Equatable {
    case event(TraceEvent)
    case lost(UInt64)

    /// Validates the whole line first; nil for anything that is not one of the two forms
    /// (a reader prints such lines unchanged rather than guessing).
    init?(_ line: Substring) {
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
        self = .event(TraceEvent(seconds: seconds, time: String(f[0]), file: Self.unescape(f[1]), event: String(f[2]),
                                 start: start, end: end, pid: pid, comm: f[5] == "-" ? nil : Self.unescape(f[5]),
                                 outcome: String(f[6]), durationMicroseconds: duration, detail: detail))
    }

    /// Undoes the trace's `\xHH` escapes.
    static func unescape(_ s: Substring) -> String {
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

struct TraceEvent: Equatable {
    var seconds: Double
    /// The timestamp as the daemon wrote it (no rounding on the way through).
    var time: String
    var file: String
    var event: String
    var start: UInt64
    var end: UInt64
    var pid: Int32?
    var comm: String?
    var outcome: String
    var durationMicroseconds: Double?
    var detail: [(String, String)]

    static func == (a: TraceEvent, b: TraceEvent) -> Bool {
        a.time == b.time && a.file == b.file && a.event == b.event && a.start == b.start && a.end == b.end
            && a.pid == b.pid && a.comm == b.comm && a.outcome == b.outcome
            && a.durationMicroseconds == b.durationMicroseconds && a.detail.map { $0.0 + "=" + $0.1 } == b.detail.map { $0.0 + "=" + $0.1 }
    }
}
