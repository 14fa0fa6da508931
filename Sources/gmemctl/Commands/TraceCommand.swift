import ArgumentParser
import Glibc
import GmemABI

/// `gmemctl trace [PATH] [--events LIST] [--json]`: a live view of `MOUNTPOINT/.trace`.
struct TraceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Show gmemfs events live: conversions, invalidations, refused accesses (Ctrl-C to stop).",
        discussion: """
            Reads MOUNTPOINT/.trace (readable by the daemon's user only). PATH is the
            mount point (every file) or a file on it (that file only).
            Event kinds: \(Self.kinds.joined(separator: ", ")).
            --json prints one object per line: {"time", "file", "event", "start",
            "end", "pid", "comm", "outcome", "duration_us", "detail"}, and
            {"lost": N} where events were dropped because the reader fell behind.
            """)

    static let kinds = GmemTraceKind.allCases.map(\.rawValue)

    @Argument(help: "The mount point, or a file on it (default: the current directory).", completion: .file()) var path = "."
    @Option(help: ArgumentHelp("Comma-separated event kinds to show (default: all).", valueName: "LIST"),
            completion: .list(GmemTraceKind.allCases.map(\.rawValue))) var events: String?
    @Flag(help: "One JSON object per line.") var json = false
    @Option(help: "Stop after this many events.") var count: Int?
    @Option(help: "auto, always, never.") var color: ColorChoice = .auto

    func validate() throws {
        if let events {
            for k in events.split(separator: ",", omittingEmptySubsequences: false) where !Self.kinds.contains(String(k)) {
                throw ValidationError("--events: unknown kind '\(k)' (kinds: \(Self.kinds.joined(separator: ",")))")
            }
        }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
    }

    func run() throws {
        let target = try GmemPath(path, .fileOrMountRoot)
        let fileFilter = target.realPath == target.mountPoint ? nil : String(target.realPath.split(separator: "/").last ?? "")
        let kinds = events.map { Set($0.split(separator: ",").map(String.init)) }
        let trace = target.mountPoint + "/" + GmemSpecialName.trace
        let fd = open(trace, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw SystemError("open \(trace)", hints: [EACCES: "the trace is readable by the daemon's user only (it shows private-page activity)",
                                                       ENOENT: "this gmemfs has no trace (an older daemon)"])
        }
        defer { close(fd) }
        let view = TraceView(terminal: Terminal.stdout(color: color), json: json)
        var shown = 0
        var pending: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                // The daemon stopped or the mount went away (ECONNABORTED, ENOTCONN, ENODEV): the end.
                if n < 0, ![ECONNABORTED, ENOTCONN, ENODEV].contains(errno) { throw SystemError("read \(trace)") }
                return
            }
            pending += chunk[..<n]
            while let nl = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[..<nl], as: UTF8.self)
                pending.removeSubrange(...nl)
                switch TraceLine(line[...]) {
                case .event(let e)?:
                    if let fileFilter, e.file != fileFilter { continue }
                    if let kinds, !kinds.contains(e.event) { continue }
                    print(view.render(e))
                    shown += 1
                case .lost(let k)?:
                    print(view.renderLost(k))
                case nil:
                    print(line)
                }
                flushOutput()
                if let count, shown >= count { return }
            }
        }
    }
}

/// How `gmemctl trace` prints an event: aligned columns with colour, or JSON.
struct TraceView {
    let terminal: Terminal
    let json: Bool

    func render(_ e: TraceEvent) -> String {
        if json { return renderJSON(e) }
        let t = terminal
        func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s : s + String(repeating: " ", count: w - s.count) }
        func lpad(_ s: String, _ w: Int) -> String { s.count >= w ? s : String(repeating: " ", count: w - s.count) + s }
        let range = "\(Units.hex(e.start))-\(Units.hex(e.end))"
        let who = (e.pid.map(String.init) ?? "-") + " " + (e.comm ?? "-")
        let duration = e.durationMicroseconds.map { String(format1: $0) + " µs" } ?? ""
        var s = t.dim(lpad(e.time, 14)) + "  " + t.bold(pad(e.file, 10)) + "  "
        s += t.paint(pad(e.event, 13), Self.eventColor(e.event)) + "  " + pad(range, 23) + "  " + pad(who, 22) + "  "
        s += t.paint(pad(e.outcome, 14), Self.outcomeColor(e.outcome)) + "  " + lpad(duration, 10)
        if !e.detail.isEmpty { s += "  " + t.dim(e.detail.map { "\($0.0)=\($0.1)" }.joined(separator: " ")) }
        return s
    }

    func renderLost(_ n: UInt64) -> String {
        json ? ((try? JSONOutput.line(["lost": n])) ?? "{}") : terminal.paint("lost \(n) events (this reader fell behind)", "1;31")
    }

    static func eventColor(_ event: String) -> String {
        switch GmemTraceKind(rawValue: event) {
        case .convert?: "36"
        case .invalidate?: "34"
        case .readRefused?, .writeRefused?: "31"
        case .create?, .remove?: "32"
        case .guestWrite?: "35"
        default: "33"
        }
    }

    static func outcomeColor(_ outcome: String) -> String {
        switch GmemTraceOutcome(rawValue: outcome) {
        case .ok?, .unchanged?: "32"
        case .becamePrivate?: "35"
        case .becameShared?: "36"
        case nil: "1;31"   // an errno
        }
    }

    func renderJSON(_ e: TraceEvent) -> String {
        (try? JSONOutput.line(JSONOutput.TraceEventJSON(e))) ?? "{}"
    }
}
