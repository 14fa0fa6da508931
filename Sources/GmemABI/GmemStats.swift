import CGmemABI

/// A key of `user.gmem.stats` (docs/xattr-interface.md): `KEY=VALUE` lines, a file's in
/// ``file`` order, the mount root's in ``root`` order. The spellings are `gmem_abi.h`'s.
public struct GmemStatsKey: Hashable, Sendable, CustomStringConvertible {
    public let name: String
    init(_ name: String) { self.name = name }
    public var description: String { name }

    public static let size = GmemStatsKey(GMEM_STATS_SIZE)
    public static let allocatedBytes = GmemStatsKey(GMEM_STATS_ALLOCATED_BYTES)
    public static let privateBytes = GmemStatsKey(GMEM_STATS_PRIVATE_BYTES)
    public static let sharedBytes = GmemStatsKey(GMEM_STATS_SHARED_BYTES)
    public static let ranges = GmemStatsKey(GMEM_STATS_RANGES)
    public static let conversions = GmemStatsKey(GMEM_STATS_CONVERSIONS)
    public static let references = GmemStatsKey(GMEM_STATS_REFERENCES)
    public static let referencedBytes = GmemStatsKey(GMEM_STATS_REFERENCED_BYTES)
    public static let eagainRefusals = GmemStatsKey(GMEM_STATS_EAGAIN_REFUSALS)
    public static let injectedFailures = GmemStatsKey(GMEM_STATS_INJECTED_FAILURES)
    public static let flags = GmemStatsKey(GMEM_STATS_FLAGS)
    public static let files = GmemStatsKey(GMEM_STATS_FILES)
    public static let maxMemory = GmemStatsKey(GMEM_STATS_MAX_MEMORY)
    public static let populateKills = GmemStatsKey(GMEM_STATS_POPULATE_KILLS)
    public static let populateZeroAnswers = GmemStatsKey(GMEM_STATS_POPULATE_ZERO_ANSWERS)
    public static let populatePending = GmemStatsKey(GMEM_STATS_POPULATE_PENDING)

    /// A file's keys, in the order the daemon prints them.
    public static let file: [GmemStatsKey] = [.size, .allocatedBytes, .privateBytes, .sharedBytes, .ranges, .conversions,
                                              .references, .referencedBytes, .eagainRefusals, .injectedFailures, .flags]
    /// The mount root's keys, in the order the daemon prints them.
    public static let root: [GmemStatsKey] = [.files, .allocatedBytes, .maxMemory, .populateKills, .populateZeroAnswers, .populatePending]

    /// Whether the value counts bytes (printed human-readable by `gmemctl stats`).
    public var isByteCount: Bool { self == .size || self == .maxMemory || name.hasSuffix("_bytes") }
    /// Whether the value is text, not a number (``flags``; ``maxMemory`` is a number or
    /// ``GmemStats/noLimit``).
    public var isText: Bool { self == .flags }
}

/// A `user.gmem.stats` value: `KEY=VALUE` lines.
public struct GmemStats: Sendable, Equatable {
    /// The lines in order; keys the reader does not know are kept as they are.
    public var pairs: [(key: String, value: String)]

    /// The value of `max_memory` when the mount has no cap.
    public static let noLimit = "none"

    public init(_ pairs: [(key: GmemStatsKey, value: String)]) {
        self.pairs = pairs.map { ($0.key.name, $0.value) }
    }

    /// Parses `KEY=VALUE` lines; a line without `=` is skipped.
    public init(parsing text: String) {
        pairs = text.split(separator: "\n").compactMap { line in
            let parts = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else { return nil }
            return (String(parts[0]), String(parts[1]))
        }
    }

    /// The value of `key`, nil when the text has no such line.
    public subscript(_ key: GmemStatsKey) -> String? { pairs.first { $0.key == key.name }?.value }

    /// The text the daemon sends: one `KEY=VALUE` line per pair, each ending in a newline.
    public var text: String { pairs.map { "\($0.key)=\($0.value)\n" }.joined() }

    public static func == (a: GmemStats, b: GmemStats) -> Bool {
        a.pairs.elementsEqual(b.pairs) { $0.key == $1.key && $0.value == $1.value }
    }
}

/// Limits of the interface (`gmem_abi.h`).
public enum GmemLimit {
    /// The largest file size (64 TiB); larger is EFBIG.
    public static let fileSizeMax = UInt64(GMEM_FILE_SIZE_MAX)
    /// References one open file description may hold on one page; a pin past it is ENOMEM.
    public static let referencesPerPageMax = UInt64(GMEM_REFERENCES_PER_PAGE_MAX)
    /// Failures armed at once on one file through `user.gmem.inject`; one more is ENOSPC.
    public static let injectedFailuresMax = Int(GMEM_INJECTED_FAILURES_MAX)
}
