/// A map from every page index in `0..<pageCount` to a `UInt64` value, stored as maximal ranges.
///
/// Ranges are inclusive (`first...last`), as in the kernel's maple tree. Every index is always
/// represented and adjacent ranges never hold equal values: a store merges with equal
/// neighbours, so converting a page and converting it back leaves a single range. Stores
/// overwrite (they never aggregate).
///
/// The representation is a B+tree of fixed 1 KiB nodes in one contiguous pool (see
/// `_NodeStorage.swift` and docs/attribute-tree.md): the keys are range starts, leaves hold the
/// value of each range, and a range ends where the next one starts. Memory is proportional to the
/// number of ranges, never to `pageCount`, which may be anything from 1 to `UInt64.max`.
///
/// `AttributeTree` has value semantics (copy-on-write of the node pool). It is not thread-safe by
/// itself; the owner serialises mutation (e.g. keeps it as a `var` behind a lock).
///
/// Complexity: `load`, `store` (of a range covering `k` existing boundaries), `holds`,
/// `firstIndex` and `countRanges` are `O(log n + k)`; iteration is `O(log n)` plus `O(1)` per
/// range. In debug builds (`GMEM_INTERNAL_CHECKS`) every mutation additionally runs the `O(n)`
/// `checkInvariants()`.
public struct AttributeTree: Sendable {
    /// Owner of the node memory (copy-on-write).
    var pool: _NodePool
    /// `pool.base`, cached so that hot paths do not chase the class reference.
    /// (Sendable: it points into `pool`, which is shared read-only or owned uniquely.)
    nonisolated(unsafe) var base: UnsafeMutablePointer<UInt64>
    /// Index of the root node.
    var root: Int
    /// Number of inner levels above the leaves (0: the root is a leaf).
    var height: Int
    /// Nodes ever handed out (bump allocator high-water mark).
    var used: Int
    /// Head of the free-node list (chained through the meta word's `next` bits), or -1.
    var freeHead: Int
    /// Live nodes.
    var nodeCount: Int
    /// Number of maximal ranges.
    public internal(set) var rangeCount: Int
    /// Number of indices covered (at least 1).
    public let pageCount: UInt64
    #if GMEM_INTERNAL_CHECKS
    /// Test hook: whether mutations validate all invariants afterwards (debug builds only).
    var _validatesAfterMutation = true
    #endif

    /// Creates a map of `pageCount` (>= 1) indices, all holding `value`.
    public init(pageCount: UInt64, value: UInt64) {
        precondition(pageCount >= 1, "an attribute tree covers at least one page")
        self.pageCount = pageCount
        pool = _NodePool(capacity: 4)
        base = pool.base
        root = 0
        height = 0
        used = 0
        freeHead = -1
        nodeCount = 0
        rangeCount = 1
        root = allocNode()
        let p = node(root)
        p[0] = 0
        p[_Node.payload] = value
        _Node.setCountRaw(p, 1)
        didMutate()
    }

    /// Bytes of node storage currently reserved (the pool), including free nodes.
    public var memoryFootprint: Int { pool.capacity * _Node.stride * MemoryLayout<UInt64>.stride }

    // MARK: - Queries

    /// The value of page `index`. Requires `index < pageCount`.
    public func load(_ index: UInt64) -> UInt64 {
        precondition(index < pageCount, "index out of bounds")
        let b = base
        var n = root
        var h = height
        while h > 0 {
            let p = b + n &* _Node.stride
            n = Int(truncatingIfNeeded: p[_Node.payload &+ _Node.search(p, index)])
            h &-= 1
        }
        let p = b + n &* _Node.stride
        return p[_Node.payload &+ _Node.search(p, index)]
    }

    /// True if every index of `range` holds `value` (the kernel's early-return check).
    public func holds(_ range: ClosedRange<UInt64>, _ value: UInt64) -> Bool {
        firstIndex(in: range, notEqualTo: value) == nil
    }

    /// The first index in `range` whose value is not `value`, or nil.
    /// Indices at or beyond `pageCount` are ignored.
    public func firstIndex(in range: ClosedRange<UInt64>, notEqualTo value: UInt64) -> UInt64? {
        var result: UInt64?
        forEachRange(overlapping: range) { r, v in
            if v != value { result = Swift.max(r.lowerBound, range.lowerBound); return false }
            return true
        }
        return result
    }

    /// Calls `body` with each maximal range overlapping `window`, ascending, unclipped.
    /// `body` returns false to stop early. Indices at or beyond `pageCount` are ignored.
    public func forEachRange(
        overlapping window: ClosedRange<UInt64>,
        _ body: (ClosedRange<UInt64>, UInt64) throws -> Bool
    ) rethrows {
        let x = window.lowerBound
        guard x < pageCount else { return }
        let y = Swift.min(window.upperBound, pageCount &- 1)
        var p = node(findLeaf(x).leaf)
        var s = _Node.search(p, x)
        var cnt = _Node.count(p)
        while true {
            let start = p[s]
            let nextLeaf = _Node.next(p)
            let end: UInt64  // exclusive
            if s &+ 1 < cnt {
                end = p[s &+ 1]
            } else if nextLeaf != _Node.noNext {
                end = node(Int(nextLeaf))[0]
            } else {
                end = pageCount
            }
            if try !body(start...(end &- 1), p[_Node.payload &+ s]) { return }
            if end > y || end == pageCount { return }
            s &+= 1
            if s == cnt {
                p = node(Int(nextLeaf))
                s = 0
                cnt = _Node.count(p)
            }
        }
    }

    /// Number of maximal ranges overlapping `window` (0 if the window lies beyond `pageCount`).
    public func countRanges(overlapping window: ClosedRange<UInt64>) -> Int {
        let x = window.lowerBound
        guard x < pageCount else { return 0 }
        let y = Swift.min(window.upperBound, pageCount &- 1)
        var p = node(findLeaf(x).leaf)
        // 1 (the range holding x) + the number of range starts in (x, y].
        var total = 1 &- _Node.search(p, x)
        while true {
            let t = _Node.search(p, y)
            total &+= t
            guard t &+ 1 == _Node.count(p) else { return total }
            let n = _Node.next(p)
            if n == _Node.noNext { return total }
            p = node(Int(n))
            guard p[0] <= y else { return total }
            total &+= 1  // slot 0 of the next leaf; the next search adds the rest
        }
    }

    // MARK: - Mutation

    /// Sets every index of `range` to `value`, merging with equal neighbours.
    /// Requires `range.upperBound < pageCount`.
    public mutating func store(_ range: ClosedRange<UInt64>, _ value: UInt64) {
        let f = range.lowerBound
        let l = range.upperBound
        precondition(l < pageCount, "range out of bounds")
        if !isKnownUniquelyReferenced(&pool) {
            if holds(range, value) { return }  // a no-op store never copies a shared pool
            makeUnique()
        }
        defer { didMutate() }
        let b = base
        var n = root
        var h = height
        var hi = pageCount  // exclusive upper bound of the leaf's index space
        while h > 0 {
            let p = b + n &* _Node.stride
            let c = _Node.search(p, f)
            let nk = p[c &+ 1]
            hi = nk < hi ? nk : hi
            n = Int(truncatingIfNeeded: p[_Node.payload &+ c])
            h &-= 1
        }
        let p = b + n &* _Node.stride
        let s = _Node.search(p, f)
        let vs = p[_Node.payload &+ s]
        let endS = Swift.min(p[s &+ 1], hi)  // exclusive end of the range holding f
        if vs == value && endS > l { return }  // already holds `value` everywhere

        // Fast path: the whole edit stays inside this leaf and keeps its fill legal.
        let e1 = l &+ 1  // no overflow: l < pageCount <= UInt64.max
        fast: do {
            guard e1 < hi else { break fast }
            let cnt = _Node.count(p)
            let keep: Int  // slots 0..<keep hold keys < f
            let predEqual: Bool  // the page before f already holds `value`
            if p[s] < f {
                keep = s &+ 1
                predEqual = vs == value
            } else if s > 0 {
                keep = s
                predEqual = p[_Node.payload &+ s &- 1] == value
            } else if f == 0 {
                keep = 0
                predEqual = false
            } else {
                break fast  // the page before f lives in the previous leaf
            }
            var e = s  // last slot with key <= e1 (the range holding e1)
            while p[e &+ 1] <= e1 { e &+= 1 }  // stops at padding: e1 < hi <= UInt64.max
            let after = p[_Node.payload &+ e]  // value at e1
            let insertFirst = !predEqual
            let insertEnd = after != value
            let added = (insertFirst ? 1 : 0) &+ (insertEnd ? 1 : 0)
            let newCount = cnt &- (e &+ 1 &- keep) &+ added
            guard newCount <= _Node.capacity, newCount >= _Node.minFill || height == 0 else { break fast }
            // keep == 0 implies f == 0 == p[0] and insertFirst, so the leaf's first key is unchanged.
            let dst = keep &+ added
            let tail = cnt &- (e &+ 1)
            if dst != e &+ 1 && tail > 0 {
                (p + dst).update(from: p + (e &+ 1), count: tail)
                (p + (_Node.payload &+ dst)).update(from: p + (_Node.payload &+ e &+ 1), count: tail)
            }
            var w = keep
            if insertFirst {
                p[w] = f
                p[_Node.payload &+ w] = value
                w &+= 1
            }
            if insertEnd {
                p[w] = e1
                p[_Node.payload &+ w] = after
            }
            _Node.setCount(p, old: cnt, new: newCount)
            rangeCount &+= newCount &- cnt
            return
        }
        storeSlow(f, l, value)
    }

    /// General store: a sequence of single-key B+tree operations (each rebalancing as needed).
    /// Intermediate states are valid B+trees but not maximal; the final one is.
    private mutating func storeSlow(_ f: UInt64, _ l: UInt64, _ value: UInt64) {
        let pred: UInt64? = f == 0 ? nil : load(f &- 1)
        let after: UInt64? = l == pageCount &- 1 ? nil : load(l &+ 1)
        // Remove every boundary strictly inside (f, l+1).
        while let k = firstKey(after: f), k <= l { removeKey(k) }
        // Boundary at f: present unless the range merges with its left neighbour.
        setBoundary(f, present: pred != value, value: value)
        // Boundary at l+1: present unless the right neighbour merges into the range.
        if let after { setBoundary(l &+ 1, present: after != value, value: after) }
    }

    // MARK: - Internals shared by the extensions

    @inline(__always) func node(_ i: Int) -> UnsafeMutablePointer<UInt64> { base + i &* _Node.stride }

    /// The leaf whose key space contains `x` and that space's exclusive upper bound.
    @inline(__always) func findLeaf(_ x: UInt64) -> (leaf: Int, hi: UInt64) {
        var n = root
        var h = height
        var hi = pageCount
        while h > 0 {
            let p = node(n)
            let c = _Node.search(p, x)
            let nk = p[c &+ 1]
            hi = nk < hi ? nk : hi
            n = Int(truncatingIfNeeded: p[_Node.payload &+ c])
            h &-= 1
        }
        return (n, hi)
    }

    mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&pool) {
            pool = pool.copy(capacity: pool.capacity, used: used)
            base = pool.base
        }
    }

    @inline(__always) func didMutate() {
        #if GMEM_INTERNAL_CHECKS
        if _validatesAfterMutation { checkInvariants() }
        #endif
    }
}
