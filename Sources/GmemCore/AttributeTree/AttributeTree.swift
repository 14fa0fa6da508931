// BOOTSTRAP implementation (sorted arrays). Replaced by the B+tree of issue #2; the API below is
// the contract the rest of GmemCore is written against.

/// A map from every page index in `0..<pageCount` to a `UInt64` value, stored as maximal ranges.
///
/// Ranges are inclusive (`first...last`), as in the kernel's maple tree. Every index is always
/// represented and adjacent ranges never hold equal values. Stores overwrite.
public struct AttributeTree: Sendable {
    /// starts[i] is the first index of range i; its last index is starts[i+1]-1 (or pageCount-1).
    private var starts: [UInt64]
    private var values: [UInt64]
    /// Number of indices covered. At least 1.
    public let pageCount: UInt64

    /// Creates a map of `pageCount` (>= 1) indices, all holding `value`.
    public init(pageCount: UInt64, value: UInt64) {
        precondition(pageCount >= 1, "an attribute tree covers at least one page")
        self.pageCount = pageCount
        starts = [0]
        values = [value]
    }

    /// Number of maximal ranges.
    public var rangeCount: Int { starts.count }

    private func slot(of index: UInt64) -> Int {
        var lo = 0, hi = starts.count
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            if starts[mid] <= index { lo = mid } else { hi = mid }
        }
        return lo
    }
    private func last(ofSlot i: Int) -> UInt64 { i + 1 < starts.count ? starts[i + 1] - 1 : pageCount - 1 }

    /// The value of page `index`. Requires `index < pageCount`.
    public func load(_ index: UInt64) -> UInt64 {
        precondition(index < pageCount)
        return values[slot(of: index)]
    }

    /// Sets every index of `range` to `value`, merging with equal neighbours.
    /// Requires `range.upperBound < pageCount`.
    public mutating func store(_ range: ClosedRange<UInt64>, _ value: UInt64) {
        precondition(range.upperBound < pageCount)
        var ranges: [(UInt64, UInt64, UInt64)] = []
        for i in 0..<starts.count {
            let f = starts[i], l = last(ofSlot: i), v = values[i]
            if l < range.lowerBound || f > range.upperBound { ranges.append((f, l, v)); continue }
            if f < range.lowerBound { ranges.append((f, range.lowerBound - 1, v)) }
            if l > range.upperBound {
                if ranges.last.map({ $0.1 }) != range.upperBound { ranges.append((range.lowerBound, range.upperBound, value)) }
                ranges.append((range.upperBound + 1, l, v))
            } else if l == range.upperBound || i == starts.count - 1 {
                ranges.append((range.lowerBound, range.upperBound, value))
            }
        }
        starts = []; values = []
        for r in ranges.sorted(by: { $0.0 < $1.0 }) {
            if let lv = values.last, lv == r.2 { continue }
            starts.append(r.0); values.append(r.2)
        }
    }

    /// True if every index of `range` holds `value` (the kernel's early-return check).
    public func holds(_ range: ClosedRange<UInt64>, _ value: UInt64) -> Bool {
        firstIndex(in: range, notEqualTo: value) == nil
    }

    /// The first index in `range` whose value is not `value`, or nil.
    public func firstIndex(in range: ClosedRange<UInt64>, notEqualTo value: UInt64) -> UInt64? {
        var result: UInt64?
        forEachRange(overlapping: range) { r, v in
            if v != value { result = max(r.lowerBound, range.lowerBound); return false }
            return true
        }
        return result
    }

    /// Calls `body` with each maximal range overlapping `window`, ascending, unclipped.
    /// `body` returns false to stop early.
    public func forEachRange(overlapping window: ClosedRange<UInt64>,
                             _ body: (ClosedRange<UInt64>, UInt64) throws -> Bool) rethrows {
        var i = slot(of: window.lowerBound)
        while i < starts.count, starts[i] <= window.upperBound {
            if try !body(starts[i]...last(ofSlot: i), values[i]) { return }
            i += 1
        }
    }

    /// Number of maximal ranges overlapping `window`.
    public func countRanges(overlapping window: ClosedRange<UInt64>) -> Int {
        var n = 0
        forEachRange(overlapping: window) { _, _ in n += 1; return true }
        return n
    }
}
