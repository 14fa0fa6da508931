import Glibc
import Logging

/// A swift-log handler appending one line per message to an open file (`--log-file`):
/// `TIME LEVEL LABEL: MESSAGE [METADATA]`, UTC, written with a single `write(2)` on an
/// `O_APPEND` descriptor so that lines from concurrent threads never interleave.
struct FileLogHandler: LogHandler {
    let label: String
    let fd: Int32
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]

    init(label: String, fd: Int32, level: Logger.Level) {
        self.label = label
        self.fd = fd
        self.logLevel = level
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        let extra = all.isEmpty ? "" : " " + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let text = Array("\(Self.timestamp()) \(event.level) \(label): \(event.message)\(extra)\n".utf8)
        _ = text.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var t = now.tv_sec
        var parts = tm()
        gmtime_r(&t, &parts)
        func pad(_ v: Int32, _ w: Int = 2) -> String { String(repeating: "0", count: max(0, w - String(v).count)) + String(v) }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1))-\(pad(parts.tm_mday))T\(pad(parts.tm_hour)):\(pad(parts.tm_min)):\(pad(parts.tm_sec)).\(pad(Int32(now.tv_nsec / 1_000_000), 3))Z"
    }
}
