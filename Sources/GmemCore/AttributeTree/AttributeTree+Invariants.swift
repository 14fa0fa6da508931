// Full structural validation. Always callable; debug builds (GMEM_INTERNAL_CHECKS) run it after
// every mutation, release builds never call it implicitly.

extension AttributeTree {
    /// Traps with a message if any invariant is violated:
    /// - ordering: keys strictly ascending in every node, unused slots padded with `UInt64.max`;
    /// - routing: inner key i equals the smallest key of child i, all leaves at one depth;
    /// - coverage: the first range starts at 0 and every range start is `< pageCount`;
    /// - maximality: adjacent ranges (also across leaves) hold different values;
    /// - fill: every node holds 1...63 entries, non-root nodes at least 31, an inner root 2;
    /// - bookkeeping: leaf chain in key order, `rangeCount`, live and free node counts.
    public func checkInvariants() {
        var leaves: [Int] = []
        var live = 0
        let first = check(node: root, height: height, isRoot: true, leaves: &leaves, live: &live)
        precondition(first == 0, "coverage: first range starts at \(first), not 0")
        precondition(live == nodeCount, "node count \(nodeCount) but \(live) reachable")
        var freeCount = 0
        var f = freeHead
        while f >= 0 {
            freeCount += 1
            precondition(freeCount <= used, "free list cycle")
            let n = _Node.next(node(f))
            f = n == _Node.noNext ? -1 : Int(n)
        }
        precondition(freeCount + nodeCount == used, "leaked nodes: \(used) used, \(nodeCount) live, \(freeCount) free")

        var ranges = 0
        var previousKey: UInt64? = nil
        var previousValue: UInt64? = nil
        for (i, leaf) in leaves.enumerated() {
            let p = node(leaf)
            let expectedNext = i + 1 < leaves.count ? UInt32(leaves[i + 1]) : _Node.noNext
            precondition(_Node.next(p) == expectedNext, "leaf chain broken at leaf \(leaf)")
            for s in 0..<_Node.count(p) {
                let k = p[s]
                let v = p[_Node.payload + s]
                if let previousKey { precondition(previousKey < k, "ordering: \(previousKey) before \(k)") }
                if let previousValue {
                    precondition(previousValue != v, "maximality: range at \(k) repeats value \(v)")
                }
                precondition(k < pageCount, "coverage: range start \(k) >= pageCount \(pageCount)")
                previousKey = k
                previousValue = v
                ranges += 1
            }
        }
        precondition(ranges == rangeCount, "rangeCount \(rangeCount) but \(ranges) ranges stored")
    }

    /// Validates the subtree at `n`; returns its smallest key.
    private func check(node n: Int, height h: Int, isRoot: Bool, leaves: inout [Int], live: inout Int) -> UInt64 {
        precondition(n >= 0 && n < used, "node index \(n) out of pool")
        live += 1
        let p = node(n)
        let cnt = _Node.count(p)
        precondition(cnt >= 1 && cnt <= _Node.capacity, "fill: node \(n) holds \(cnt) entries")
        if !isRoot { precondition(cnt >= _Node.minFill, "fill: non-root node \(n) holds \(cnt) < \(_Node.minFill)") }
        if isRoot && h > 0 { precondition(cnt >= 2, "fill: inner root holds \(cnt) child") }
        for s in 1..<_Node.slots where s < cnt {
            precondition(p[s - 1] < p[s], "ordering: node \(n) slot \(s) key \(p[s]) <= \(p[s - 1])")
        }
        for s in cnt..<_Node.slots {
            precondition(p[s] == _Node.pad, "padding: node \(n) slot \(s) holds \(p[s])")
        }
        if h == 0 {
            leaves.append(n)
        } else {
            for s in 0..<cnt {
                let child = Int(p[_Node.payload + s])
                let m = check(node: child, height: h - 1, isRoot: false, leaves: &leaves, live: &live)
                precondition(m == p[s], "routing: node \(n) slot \(s) key \(p[s]) but child min \(m)")
            }
        }
        return p[0]
    }
}

extension AttributeTree {
    // Clear-box hooks for tests.

    /// Inner levels above the leaves (0: the root is a leaf).
    var _height: Int { height }
    /// Live nodes.
    var _nodeCount: Int { nodeCount }
}

extension AttributeTree {
    /// Pool statistics for benchmarks: nodes handed out (high-water), live nodes, inner levels.
    @_spi(Benchmarks) public var _poolStatistics: (used: Int, live: Int, height: Int) { (used, nodeCount, height) }
}
