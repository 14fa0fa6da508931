import GmemTestSupport
import Testing

@testable import GmemCore

/// All ranges of `tree`, ascending, through the public iteration API.
func allRanges(_ tree: AttributeTree) -> [(range: ClosedRange<UInt64>, value: UInt64)] {
    var out: [(range: ClosedRange<UInt64>, value: UInt64)] = []
    tree.forEachRange(overlapping: 0...(tree.pageCount - 1)) { r, v in
        out.append((r, v))
        return true
    }
    return out
}

/// Compares every query of `tree` with `model` (all pages, all ranges, and `probes` random
/// windows drawn from `rng`). `context` names the seed and step for replay.
func expectMatches(_ tree: AttributeTree, _ model: NaiveAttributeModel, probes: Int = 8,
                   rng: inout SplitMix64, _ context: @autoclosure () -> String,
                   sourceLocation: SourceLocation = #_sourceLocation) {
    tree.checkInvariants()
    let expected = model.ranges
    let actual = allRanges(tree)
    #expect(tree.rangeCount == expected.count, "rangeCount, \(context())", sourceLocation: sourceLocation)
    let same = actual.count == expected.count
        && zip(actual, expected).allSatisfy { $0.range == $1.range && $0.value == $1.value }
    #expect(same, "ranges \(actual) != model \(expected), \(context())", sourceLocation: sourceLocation)
    for i in 0..<model.pageCount where tree.load(i) != model.load(i) {
        Issue.record("load(\(i)) = \(tree.load(i)), model \(model.load(i)), \(context())", sourceLocation: sourceLocation)
        break
    }
    for _ in 0..<probes {
        let a = rng.next(below: model.pageCount)
        let b = a + rng.next(below: model.pageCount - a)
        let w = a...b
        let v = model.load(a)
        #expect(tree.countRanges(overlapping: w) == model.countRanges(overlapping: w),
                "countRanges(\(w)), \(context())", sourceLocation: sourceLocation)
        #expect(tree.holds(w, v) == model.holds(w, v), "holds(\(w), \(v)), \(context())", sourceLocation: sourceLocation)
        #expect(tree.firstIndex(in: w, notEqualTo: v) == model.firstIndex(in: w, notEqualTo: v),
                "firstIndex(in: \(w), notEqualTo: \(v)), \(context())", sourceLocation: sourceLocation)
        var seen: [(range: ClosedRange<UInt64>, value: UInt64)] = []
        tree.forEachRange(overlapping: w) { r, v in seen.append((r, v)); return true }
        let want = model.ranges(overlapping: w)
        #expect(seen.count == want.count && zip(seen, want).allSatisfy { $0.range == $1.range && $0.value == $1.value },
                "forEachRange(\(w)), \(context())", sourceLocation: sourceLocation)
    }
}
