/// The obviously-correct model of an attribute tree: one value per page. Tests mirror every
/// store into it and compare all queries page by page.
public struct NaiveAttributeModel: Equatable, Sendable {
    public private(set) var pages: [UInt64]

    public init(pageCount: Int, value: UInt64) {
        precondition(pageCount >= 1)
        pages = Array(repeating: value, count: pageCount)
    }

    public var pageCount: UInt64 { UInt64(pages.count) }

    public func load(_ index: UInt64) -> UInt64 { pages[Int(index)] }

    public mutating func store(_ range: ClosedRange<UInt64>, _ value: UInt64) {
        for i in range { pages[Int(i)] = value }
    }

    /// The maximal ranges, ascending.
    public var ranges: [(range: ClosedRange<UInt64>, value: UInt64)] {
        var out: [(range: ClosedRange<UInt64>, value: UInt64)] = []
        var start = 0
        for i in 1...pages.count where i == pages.count || pages[i] != pages[start] {
            out.append((UInt64(start)...UInt64(i - 1), pages[start]))
            start = i
        }
        return out
    }

    public func holds(_ range: ClosedRange<UInt64>, _ value: UInt64) -> Bool {
        range.allSatisfy { pages[Int($0)] == value }
    }

    public func firstIndex(in range: ClosedRange<UInt64>, notEqualTo value: UInt64) -> UInt64? {
        range.first { pages[Int($0)] != value }
    }

    /// Ranges overlapping `window` (clipped to the model's pages), ascending, unclipped.
    public func ranges(overlapping window: ClosedRange<UInt64>) -> [(range: ClosedRange<UInt64>, value: UInt64)] {
        ranges.filter { $0.range.overlaps(window) }
    }

    public func countRanges(overlapping window: ClosedRange<UInt64>) -> Int {
        ranges(overlapping: window).count
    }
}
