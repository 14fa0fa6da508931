import GmemTestSupport
import Testing

@testable import GmemCore

/// Property tests against the per-page model. Every failure message names the seed and the step;
/// rerun a single seed with `swift test --filter AttributeTreeModelTests` after narrowing the
/// `arguments:` list to it.
@Suite struct AttributeTreeModelTests {
    /// Small maps, invariants checked after every store (debug builds), full comparison each step.
    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8] as [UInt64])
    func randomStoresSmall(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let pageCount = 1 + Int(rng.next(below: 300))
        var tree = AttributeTree(pageCount: UInt64(pageCount), value: 0)
        var model = NaiveAttributeModel(pageCount: pageCount, value: 0)
        for step in 0..<300 {
            let first = rng.next(below: UInt64(pageCount))
            let len = 1 + rng.next(below: min(UInt64(pageCount) - first, step % 7 == 0 ? 200 : 12))
            let value = rng.next(below: 3)
            tree.store(first...(first + len - 1), value)
            model.store(first...(first + len - 1), value)
            expectMatches(tree, model, probes: 2, rng: &rng, "seed \(seed) pageCount \(pageCount) step \(step) store \(first)...\(first + len - 1)=\(value)")
        }
    }

    /// Enough ranges for three-level trees: node splits, shifts to siblings, then coalescing
    /// stores that merge nodes and collapse the root again.
    @Test(arguments: [11, 12, 13] as [UInt64])
    func randomStoresMultiLevel(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let pageCount = 30_000
        var tree = AttributeTree(pageCount: UInt64(pageCount), value: 8)
        var model = NaiveAttributeModel(pageCount: pageCount, value: 8)
        #if GMEM_INTERNAL_CHECKS
        tree._validatesAfterMutation = false  // O(n) per store: validate every 1000 steps instead
        #endif
        // Grow: short stores of two values produce ~pageCount/3 ranges.
        for step in 0..<30_000 {
            let first = rng.next(below: UInt64(pageCount))
            let last = min(first + rng.next(below: 4), UInt64(pageCount - 1))
            let value: UInt64 = rng.next() & 1 == 0 ? 0 : 8
            tree.store(first...last, value)
            model.store(first...last, value)
            if step % 1000 == 999 { tree.checkInvariants() }
        }
        #expect(tree._height >= 2, "seed \(seed): expected a multi-level tree, height \(tree._height) ranges \(tree.rangeCount)")
        expectMatches(tree, model, probes: 50, rng: &rng, "seed \(seed) after growth")
        // Shrink: longer stores coalesce ranges; the tree must merge nodes and lower itself.
        for step in 0..<400 {
            let first = rng.next(below: UInt64(pageCount))
            let last = min(first + rng.next(below: 400), UInt64(pageCount - 1))
            tree.store(first...last, 8)
            model.store(first...last, 8)
            if step % 50 == 49 { expectMatches(tree, model, probes: 5, rng: &rng, "seed \(seed) shrink step \(step)") }
        }
        tree.store(0...UInt64(pageCount - 1), 8)
        model.store(0...UInt64(pageCount - 1), 8)
        expectMatches(tree, model, rng: &rng, "seed \(seed) after whole store")
        #expect(tree._height == 0 && tree._nodeCount == 1, "seed \(seed): height \(tree._height), nodes \(tree._nodeCount)")
    }

    /// Sequential patterns (append-like and reverse) stress splits at the right and left edges.
    @Test func sequentialPatterns() {
        var rng = SplitMix64(seed: 99)
        let pageCount = 5000
        for reverse in [false, true] {
            var tree = AttributeTree(pageCount: UInt64(pageCount), value: 0)
            var model = NaiveAttributeModel(pageCount: pageCount, value: 0)
            #if GMEM_INTERNAL_CHECKS
            tree._validatesAfterMutation = false
            #endif
            for k in 0..<(pageCount / 2) {
                let i = UInt64(reverse ? pageCount - 1 - 2 * k : 2 * k)
                tree.store(i...i, 1)
                model.store(i...i, 1)
                if k % 500 == 0 { tree.checkInvariants() }
            }
            expectMatches(tree, model, probes: 20, rng: &rng, "reverse \(reverse) after alternating")
            for k in 0..<(pageCount / 2) {
                let i = UInt64(reverse ? pageCount - 1 - 2 * k : 2 * k)
                tree.store(i...i, 0)
                model.store(i...i, 0)
                if k % 500 == 0 { tree.checkInvariants() }
            }
            expectMatches(tree, model, rng: &rng, "reverse \(reverse) after reverting")
            #expect(tree.rangeCount == 1 && tree._height == 0 && tree._nodeCount == 1)
        }
    }
}
