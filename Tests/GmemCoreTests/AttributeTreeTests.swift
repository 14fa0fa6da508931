import GmemTestSupport
import Testing

@testable import GmemCore

@Suite struct AttributeTreeTests {
    /// Every store (all ranges, three values) applied to every two-valued starting pattern of
    /// maps of 1...6 pages.
    @Test func exhaustiveSmall() {
        var rng = SplitMix64(seed: 0)
        for pageCount in 1...6 {
            let n = UInt64(pageCount)
            for pattern in 0..<(1 << pageCount) {
                var base = AttributeTree(pageCount: n, value: 0)
                var baseModel = NaiveAttributeModel(pageCount: pageCount, value: 0)
                for i in 0..<pageCount where pattern & (1 << i) != 0 {
                    base.store(UInt64(i)...UInt64(i), 1)
                    baseModel.store(UInt64(i)...UInt64(i), 1)
                }
                for first in 0..<n {
                    for last in first..<n {
                        for value: UInt64 in 0...2 {
                            var tree = base  // copy-on-write: `base` must stay untouched
                            var model = baseModel
                            tree.store(first...last, value)
                            model.store(first...last, value)
                            expectMatches(tree, model, probes: 1, rng: &rng,
                                          "pages \(pageCount) pattern \(pattern) store \(first)...\(last)=\(value)")
                        }
                    }
                }
                expectMatches(base, baseModel, probes: 0, rng: &rng, "pattern \(pattern) unchanged by copies")
            }
        }
    }

    @Test func onePageMap() {
        var tree = AttributeTree(pageCount: 1, value: 5)
        #expect(tree.load(0) == 5 && tree.rangeCount == 1)
        tree.store(0...0, 7)
        #expect(tree.load(0) == 7 && tree.rangeCount == 1)
        #expect(tree.holds(0...0, 7) && !tree.holds(0...0, 5))
        #expect(tree.firstIndex(in: 0...0, notEqualTo: 5) == 0)
        #expect(tree.countRanges(overlapping: 0...0) == 1)
        #expect(tree.countRanges(overlapping: 1...10) == 0)
    }

    @Test func splitOneIntoThreeAndMergeBack() {
        var tree = AttributeTree(pageCount: 100, value: 8)
        tree.store(40...59, 0)
        #expect(allRanges(tree).map(\.range) == [0...39, 40...59, 60...99])
        #expect(allRanges(tree).map(\.value) == [8, 0, 8])
        tree.store(40...59, 8)  // converting back leaves one range
        #expect(tree.rangeCount == 1 && allRanges(tree).map(\.range) == [0...99])
        // three into one across different values
        tree.store(10...19, 1)
        tree.store(20...29, 2)
        tree.store(30...39, 3)
        #expect(tree.rangeCount == 5)
        tree.store(10...39, 8)
        #expect(tree.rangeCount == 1)
    }

    @Test func edgesOfTheIndexSpace() {
        var tree = AttributeTree(pageCount: 10, value: 0)
        tree.store(0...0, 1)
        tree.store(9...9, 1)
        #expect(allRanges(tree).map(\.range) == [0...0, 1...8, 9...9])
        tree.store(0...9, 2)
        #expect(allRanges(tree).map(\.range) == [0...9])
        #expect(tree.firstIndex(in: 0...9, notEqualTo: 2) == nil)
        tree.store(5...9, 3)
        #expect(tree.firstIndex(in: 0...9, notEqualTo: 2) == 5)
        #expect(tree.firstIndex(in: 6...100, notEqualTo: 3) == nil)  // beyond pageCount is ignored
    }

    /// 2^52 pages and UInt64.max pages: memory follows ranges, and nothing overflows at the top.
    @Test(arguments: [UInt64(1) << 52, UInt64.max, UInt64.max - 1])
    func hugeMaps(pageCount: UInt64) {
        let top = pageCount - 1
        var tree = AttributeTree(pageCount: pageCount, value: 8)
        #expect(tree.load(top) == 8 && tree.load(0) == 8)
        tree.store(top...top, 0)
        tree.store(0...0, 0)
        #expect(allRanges(tree).map(\.range) == [0...0, 1...(top - 1), top...top])
        #expect(tree.countRanges(overlapping: 0...top) == 3)
        #expect(tree.countRanges(overlapping: (top - 1)...top) == 2)
        #expect(tree.firstIndex(in: 1...top, notEqualTo: 8) == top)
        tree.store(0...top, 8)
        #expect(tree.rangeCount == 1 && tree.holds(0...top, 8))
        #expect(tree.memoryFootprint <= 4096)

        // A random window at the very top of the index space against a shifted model.
        var rng = SplitMix64(seed: pageCount)
        let width = 300
        let offset = pageCount - UInt64(width)
        var model = NaiveAttributeModel(pageCount: width, value: 8)
        #if GMEM_INTERNAL_CHECKS
        tree._validatesAfterMutation = true
        #endif
        for step in 0..<600 {
            let a = rng.next(below: UInt64(width))
            let b = min(a + rng.next(below: 20), UInt64(width - 1))
            let v = rng.next(below: 3) == 0 ? 8 : rng.next(below: 3)
            tree.store((offset + a)...(offset + b), v)
            model.store(a...b, v)
            let ranges = allRanges(tree)
            // The prefix below the window is one range of 8 (possibly merged into the window).
            var expected: [(ClosedRange<UInt64>, UInt64)] = model.ranges.map { ((offset + $0.range.lowerBound)...(offset + $0.range.upperBound), $0.value) }
            if expected[0].1 == 8 { expected[0].0 = 0...expected[0].0.upperBound } else { expected.insert((0...(offset - 1), 8), at: 0) }
            let same = ranges.count == expected.count && zip(ranges, expected).allSatisfy { $0.range == $1.0 && $0.value == $1.1 }
            #expect(same, "pageCount \(pageCount) step \(step): \(ranges) vs \(expected)")
            if !same { break }
            let i = offset + rng.next(below: UInt64(width))
            #expect(tree.load(i) == model.load(i - offset))
            #expect(tree.countRanges(overlapping: i...UInt64.max) == expected.filter { $0.0.upperBound >= i }.count)
        }
    }

    @Test func copiesAreIndependent() {
        var a = AttributeTree(pageCount: 1000, value: 0)
        for i in stride(from: 0 as UInt64, to: 1000, by: 2) { a.store(i...i, 1) }  // multi-leaf
        let snapshot = a
        a.store(0...999, 0)
        #expect(a.rangeCount == 1)
        #expect(snapshot.rangeCount == 1000)
        #expect(snapshot.load(998) == 1 && snapshot.load(999) == 0)
        snapshot.checkInvariants()
        var b = snapshot
        b.store(1...1, 1)
        #expect(b.rangeCount == 998 && snapshot.rangeCount == 1000)
    }

    @Test func forEachRangeStopsEarly() {
        var tree = AttributeTree(pageCount: 100, value: 0)
        for i in stride(from: 0 as UInt64, to: 100, by: 10) { tree.store(i...(i + 4), 1) }
        var seen = 0
        tree.forEachRange(overlapping: 0...99) { _, _ in seen += 1; return seen < 3 }
        #expect(seen == 3)
        var windows: [ClosedRange<UInt64>] = []
        tree.forEachRange(overlapping: 12...27) { r, _ in windows.append(r); return true }
        #expect(windows == [10...14, 15...19, 20...24, 25...29])  // unclipped
    }
}

extension AttributeTreeTests {
    @Test func noOpStoreKeepsSharing() {
        var a = AttributeTree(pageCount: 100, value: 0)
        a.store(10...20, 1)
        var b = a
        b.store(12...15, 1)  // no-op
        b.store(50...60, 0)  // no-op
        #expect(b.rangeCount == 3)
        b.store(0...99, 2)
        #expect(a.rangeCount == 3 && a.load(15) == 1 && b.rangeCount == 1)
    }
}
