/// Pages of a file by index, both ends inclusive: page ``first`` through page ``last``, never
/// empty. Byte positions are never a `PageRange`: they stay byte offsets and sizes (`UInt64`),
/// and ``offset`` and ``size`` give the bytes a range covers.
public struct PageRange: Hashable, Sendable, Sequence, CustomStringConvertible {
    /// The first page's index.
    public let first: UInt64
    /// The last page's index (included).
    public let last: UInt64

    public init(first: UInt64, last: UInt64) {
        precondition(first <= last, "an empty page range")
        self.first = first; self.last = last
    }

    public init(_ pages: ClosedRange<UInt64>) { self.init(first: pages.lowerBound, last: pages.upperBound) }

    /// The pages overlapping the bytes `[offset, offset + size)`; `size > 0` and no overflow
    /// (the caller has validated both).
    init(coveringOffset offset: UInt64, size: UInt64) {
        self.init(first: offset >> pageShift, last: (offset + size - 1) >> pageShift)
    }

    /// The same pages for the APIs that take page indices (``AttributeTree``).
    public var indices: ClosedRange<UInt64> { first...last }
    /// How many pages.
    public var count: UInt64 { last - first + 1 }
    /// The byte offset of the first page.
    public var offset: UInt64 { first << pageShift }
    /// The bytes the pages span.
    public var size: UInt64 { count << pageShift }

    public func contains(_ page: UInt64) -> Bool { first <= page && page <= last }
    public func overlaps(_ other: PageRange) -> Bool { first <= other.last && other.first <= last }
    public func makeIterator() -> ClosedRange<UInt64>.Iterator { indices.makeIterator() }
    public var description: String { indices.description }
}
