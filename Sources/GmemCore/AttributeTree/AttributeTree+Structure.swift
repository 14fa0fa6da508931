// Single-key B+tree operations used by the general (slow) store path: insert with
// shift-to-sibling or split, remove with borrow or merge, and node allocation.
//
// Conventions: inner key i is the exact smallest key of child i's subtree, so the root's key 0
// is 0 (index 0 is always a range start) and the branchless `_Node.search` works on every
// level. Index 0 is never removed, so every key searched for has a node slot at or left of it.

extension AttributeTree {
    // MARK: Node allocation

    /// A fresh empty node (all keys padding, count 0, no next leaf). May move the pool.
    mutating func allocNode() -> Int {
        let i: Int
        if freeHead >= 0 {
            i = freeHead
            let n = _Node.next(node(i))
            freeHead = n == _Node.noNext ? -1 : Int(n)
        } else {
            if used == pool.capacity {
                pool = pool.copy(capacity: pool.capacity * 2, used: used)
                base = pool.base
            }
            i = used
            used += 1
        }
        let p = node(i)
        p.update(repeating: _Node.pad, count: _Node.slots)
        p[_Node.meta] = UInt64(_Node.noNext) << 32
        nodeCount += 1
        return i
    }

    mutating func freeNode(_ i: Int) {
        let p = node(i)
        p.update(repeating: _Node.pad, count: _Node.slots)
        p[_Node.meta] = 0
        _Node.setNext(p, freeHead < 0 ? _Node.noNext : UInt32(freeHead))
        freeHead = i
        nodeCount -= 1
    }

    // MARK: Lookup

    /// The smallest key greater than `k`, or nil.
    func firstKey(after k: UInt64) -> UInt64? {
        let p = node(findLeaf(k).leaf)
        let s = _Node.search(p, k)
        if s + 1 < _Node.count(p) { return p[s + 1] }
        let n = _Node.next(p)
        return n == _Node.noNext ? nil : node(Int(n))[0]
    }

    /// Makes `k` a range start with `value` (present) or not a range start (absent).
    mutating func setBoundary(_ k: UInt64, present: Bool, value: UInt64) {
        let p = node(findLeaf(k).leaf)
        let s = _Node.search(p, k)
        let exists = p[s] == k
        if present {
            if exists { p[_Node.payload + s] = value } else { insertKey(k, value) }
        } else if exists {
            removeKey(k)
        }
    }

    // MARK: Insert

    /// Inserts the absent key `k` (> 0) with `value`.
    mutating func insertKey(_ k: UInt64, _ value: UInt64) {
        while !insert(into: root, height: height, k, value) {
            // The root is full: put a new root with a single child above it; the retry splits it.
            let old = root
            let r = allocNode()
            let rp = node(r)
            rp[0] = node(old)[0]
            rp[_Node.payload] = UInt64(old)
            _Node.setCountRaw(rp, 1)
            root = r
            height += 1
        }
    }

    /// Inserts into the subtree at `n` (of height `h`). Returns false, having changed nothing,
    /// when `n` itself would need to grow but is full.
    private mutating func insert(into n: Int, height h: Int, _ k: UInt64, _ value: UInt64) -> Bool {
        let p = node(n)
        let s = _Node.search(p, k)
        let cnt = _Node.count(p)
        if h == 0 {
            if cnt == _Node.capacity { return false }
            let at = s + 1
            if at < cnt {
                (p + at + 1).update(from: p + at, count: cnt - at)
                (p + _Node.payload + at + 1).update(from: p + _Node.payload + at, count: cnt - at)
            }
            p[at] = k
            p[_Node.payload + at] = value
            _Node.setCountRaw(p, cnt + 1)
            rangeCount += 1
            return true
        }
        let child = Int(p[_Node.payload + s])
        if insert(into: child, height: h - 1, k, value) { return true }
        // The child is full: move part of it to a sibling, or split it.
        if !shiftToSibling(parent: n, slot: s) {
            if cnt == _Node.capacity { return false }
            split(parent: n, slot: s, childHeight: h - 1)
        }
        return insert(into: n, height: h, k, value)
    }

    /// Siblings at most this full take entries from a full neighbour instead of splitting it.
    private static var shiftLimit: Int { _Node.capacity - 2 }

    /// Moves entries of the full child at `slot` into an adjacent sibling with room.
    private mutating func shiftToSibling(parent: Int, slot s: Int) -> Bool {
        let pp = node(parent)
        let pc = _Node.count(pp)
        let c = node(Int(pp[_Node.payload + s]))
        let cn = _Node.count(c)
        if s > 0 {
            let l = node(Int(pp[_Node.payload + s - 1]))
            let ln = _Node.count(l)
            if ln <= Self.shiftLimit {
                let m = cn - (ln + cn) / 2
                moveFront(of: c, count: cn, toEndOf: l, count: ln, m)
                pp[s] = c[0]
                return true
            }
        }
        if s + 1 < pc {
            let r = node(Int(pp[_Node.payload + s + 1]))
            let rn = _Node.count(r)
            if rn <= Self.shiftLimit {
                let m = cn - (rn + cn) / 2
                moveBack(of: c, count: cn, toFrontOf: r, count: rn, m)
                pp[s + 1] = r[0]
                return true
            }
        }
        return false
    }

    /// Splits the full child at `slot` into two; the parent must have room.
    private mutating func split(parent: Int, slot s: Int, childHeight: Int) {
        let childIndex = Int(node(parent)[_Node.payload + s])
        let fresh = allocNode()  // may move the pool: take pointers afterwards
        let pp = node(parent)
        let c = node(childIndex)
        let r = node(fresh)
        let cn = _Node.count(c)
        let keep = (cn + 1) / 2
        moveBack(of: c, count: cn, toFrontOf: r, count: 0, cn - keep)
        if childHeight == 0 {
            _Node.setNext(r, _Node.next(c))
            _Node.setNext(c, UInt32(fresh))
        }
        let pc = _Node.count(pp)
        let at = s + 1
        if at < pc {
            (pp + at + 1).update(from: pp + at, count: pc - at)
            (pp + _Node.payload + at + 1).update(from: pp + _Node.payload + at, count: pc - at)
        }
        pp[at] = r[0]
        pp[_Node.payload + at] = UInt64(fresh)
        _Node.setCountRaw(pp, pc + 1)
    }

    // MARK: Remove

    /// Removes the present key `k` (> 0).
    mutating func removeKey(_ k: UInt64) {
        remove(from: root, height: height, k)
        while height > 0 && _Node.count(node(root)) == 1 {
            let old = root
            root = Int(node(old)[_Node.payload])
            height -= 1
            freeNode(old)
        }
    }

    private mutating func remove(from n: Int, height h: Int, _ k: UInt64) {
        let p = node(n)
        let s = _Node.search(p, k)
        if h == 0 {
            precondition(p[s] == k, "attribute tree: removing an absent key")
            let cnt = _Node.count(p)
            if s + 1 < cnt {
                (p + s).update(from: p + s + 1, count: cnt - s - 1)
                (p + _Node.payload + s).update(from: p + _Node.payload + s + 1, count: cnt - s - 1)
            }
            _Node.setCount(p, old: cnt, new: cnt - 1)
            rangeCount -= 1
            return
        }
        let child = Int(p[_Node.payload + s])
        remove(from: child, height: h - 1, k)
        let c = node(child)
        p[s] = c[0]  // the child's smallest key may have changed
        if _Node.count(c) < _Node.minFill { fixUnderflow(parent: n, slot: s, childHeight: h - 1) }
    }

    /// Merges the underfull child at `slot` with a sibling, or borrows from it.
    private mutating func fixUnderflow(parent: Int, slot s: Int, childHeight: Int) {
        let pp = node(parent)
        let pc = _Node.count(pp)
        guard pc >= 2 else { return }
        let a = s + 1 < pc ? s : s - 1
        let b = a + 1
        let bi = Int(pp[_Node.payload + b])
        let ap = node(Int(pp[_Node.payload + a]))
        let bp = node(bi)
        let an = _Node.count(ap)
        let bn = _Node.count(bp)
        if an + bn <= _Node.capacity {
            moveFront(of: bp, count: bn, toEndOf: ap, count: an, bn)
            if childHeight == 0 { _Node.setNext(ap, _Node.next(bp)) }
            if b + 1 < pc {
                (pp + b).update(from: pp + b + 1, count: pc - b - 1)
                (pp + _Node.payload + b).update(from: pp + _Node.payload + b + 1, count: pc - b - 1)
            }
            _Node.setCount(pp, old: pc, new: pc - 1)
            freeNode(bi)
        } else {
            let target = (an + bn) / 2
            if an < target {
                moveFront(of: bp, count: bn, toEndOf: ap, count: an, target - an)
            } else if an > target {
                moveBack(of: ap, count: an, toFrontOf: bp, count: bn, an - target)
            }
            pp[b] = bp[0]
        }
    }

    // MARK: Entry moves between nodes (keys and payload together)

    /// Moves the first `m` entries of `src` (holding `sn`) to the end of `dst` (holding `dn`).
    private func moveFront(of src: UnsafeMutablePointer<UInt64>, count sn: Int,
                           toEndOf dst: UnsafeMutablePointer<UInt64>, count dn: Int, _ m: Int) {
        guard m > 0 else { return }
        (dst + dn).update(from: src, count: m)
        (dst + _Node.payload + dn).update(from: src + _Node.payload, count: m)
        _Node.setCountRaw(dst, dn + m)
        if m < sn {
            src.update(from: src + m, count: sn - m)
            (src + _Node.payload).update(from: src + _Node.payload + m, count: sn - m)
        }
        _Node.setCount(src, old: sn, new: sn - m)
    }

    /// Moves the last `m` entries of `src` (holding `sn`) to the front of `dst` (holding `dn`).
    private func moveBack(of src: UnsafeMutablePointer<UInt64>, count sn: Int,
                          toFrontOf dst: UnsafeMutablePointer<UInt64>, count dn: Int, _ m: Int) {
        guard m > 0 else { return }
        if dn > 0 {
            (dst + m).update(from: dst, count: dn)
            (dst + _Node.payload + m).update(from: dst + _Node.payload, count: dn)
        }
        dst.update(from: src + sn - m, count: m)
        (dst + _Node.payload).update(from: src + _Node.payload + sn - m, count: m)
        _Node.setCountRaw(dst, dn + m)
        _Node.setCount(src, old: sn, new: sn - m)
    }
}
