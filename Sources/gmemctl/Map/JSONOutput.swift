import Foundation
import GmemABI

/// `--json` output of stats, map and watch: stable shapes, stated in each command's help.
///
/// - Keys are sorted and snake_case (`sharedBytes` is `shared_bytes`, the `user.gmem.stats`
///   spelling; the stats keys, already snake_case, pass unchanged); offsets and sizes are JSON numbers in bytes (exact up to 2^53, far past
///   any gmem file).
/// - `map --json` and each line of `watch --json` is one ``MapJSON`` object.
enum JSONOutput {
    /// One range of a map: bytes `[offset, end)`.
    struct Range: Encodable, Equatable {
        var offset: UInt64
        var size: UInt64
        var end: UInt64
        var attribute: String
    }

    /// A file's map.
    struct MapJSON: Encodable {
        var path: String
        var size: UInt64
        var sharedBytes: UInt64
        var privateBytes: UInt64
        var ranges: [Range]

        init(_ map: AttributeMap) {
            path = map.path
            size = map.fileSize
            sharedBytes = map.sharedBytes
            privateBytes = map.privateBytes
            ranges = map.ranges.map { Range(offset: $0.start, size: $0.size, end: $0.end, attribute: $0.name) }
        }
    }

    /// A `user.gmem.stats` value: a number when it is one, else the text.
    enum Value: Encodable {
        case number(UInt64)
        case text(String)
        case null

        init(_ text: String) { self = UInt64(text).map(Value.number) ?? .text(text) }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .number(let n): try c.encode(n)
            case .text(let s): try c.encode(s)
            case .null: try c.encodeNil()
            }
        }
    }

    /// `stats --json`: the counters as they are named in `user.gmem.stats`, and on a mount
    /// point one map summary per file (`files`, absent for a file).
    struct StatsJSON: Encodable {
        var path: String
        var stats: [String: Value]
        var files: [FileSummary]?
    }

    struct FileSummary: Encodable {
        var name: String
        var size: UInt64
        var sharedBytes: UInt64
        var privateBytes: UInt64
        var ranges: Int
    }

    /// One event of `trace --json`; absent values are `null`, the detail an object.
    struct TraceEventJSON: Encodable {
        let event: TraceEvent
        init(_ event: TraceEvent) { self.event = event }

        enum CodingKeys: CodingKey { case time, file, event, start, end, pid, comm, outcome, durationUs, detail }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(event.seconds, forKey: .time)
            try c.encode(event.file, forKey: .file)
            try c.encode(event.event, forKey: .event)
            try c.encode(event.start, forKey: .start)
            try c.encode(event.end, forKey: .end)
            try c.encode(event.pid, forKey: .pid)
            try c.encode(event.comm, forKey: .comm)
            try c.encode(event.outcome, forKey: .outcome)
            try c.encode(event.durationMicroseconds, forKey: .durationUs)
            try c.encode(Dictionary(event.detail, uniquingKeysWith: { _, last in last }), forKey: .detail)
        }
    }

    /// `value` as one line of JSON (no newline).
    static func line(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}
