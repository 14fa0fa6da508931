#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Node geometry of the attribute tree's B+tree. Every node, leaf or inner, is one fixed
/// 1 KiB block of 128 `UInt64` words inside a single contiguous pool:
///
/// ```
///  word  0 ..< 63   keys        sorted ascending; unused slots hold UInt64.max (padding)
///  word 63          key pad     always UInt64.max (a node holds at most 63 entries)
///  word 64 ..< 127  payload     leaf: value of the range starting at keys[i]
///                               inner: node index of child i (its smallest key is keys[i])
///  word 127         meta        bits 0..<32 entry count, bits 32..<64 next leaf (0xFFFF_FFFF = none)
/// ```
///
/// Keys are range starts. Because slot 63 is always padding, `keys[i + 1]` is readable for every
/// occupied slot `i`, and a fixed six-step branchless binary search over 64 slots finds the last
/// slot whose key is `<= x` without ever looking at the count.
enum _Node {
    /// Words per node.
    static let stride = 128
    /// Slots searched (the last one is permanent padding).
    static let slots = 64
    /// Maximum number of entries (keys) in any node.
    static let capacity = 63
    /// Minimum number of entries in a non-root node.
    static let minFill = 31
    /// Word offset of the payload (values or children).
    static let payload = 64
    /// Word offset of the meta word.
    static let meta = 127
    /// Padding key.
    static let pad = UInt64.max
    /// "No next leaf".
    static let noNext: UInt32 = .max

    /// The last slot `i` with `keys[i] <= x`. Requires `keys[0] <= x` (true for every node on a
    /// search path, since inner keys are the exact minimum keys of their subtrees and index 0 is
    /// always a key). Branchless: six dependent loads, no mispredictions.
    @inline(__always)
    static func search(_ p: UnsafeMutablePointer<UInt64>, _ x: UInt64) -> Int {
        var i = 0
        i = p[i &+ 32] <= x ? i &+ 32 : i
        i = p[i &+ 16] <= x ? i &+ 16 : i
        i = p[i &+ 8] <= x ? i &+ 8 : i
        i = p[i &+ 4] <= x ? i &+ 4 : i
        i = p[i &+ 2] <= x ? i &+ 2 : i
        i = p[i &+ 1] <= x ? i &+ 1 : i
        return i
    }

    @inline(__always) static func count(_ p: UnsafeMutablePointer<UInt64>) -> Int {
        Int(truncatingIfNeeded: UInt32(truncatingIfNeeded: p[meta]))
    }
    @inline(__always) static func setCountRaw(_ p: UnsafeMutablePointer<UInt64>, _ n: Int) {
        p[meta] = (p[meta] & 0xFFFF_FFFF_0000_0000) | UInt64(UInt32(truncatingIfNeeded: n))
    }
    /// Sets the count and re-pads the key slots that fell out of use.
    @inline(__always) static func setCount(_ p: UnsafeMutablePointer<UInt64>, old: Int, new: Int) {
        if new < old { (p + new).update(repeating: pad, count: old &- new) }
        setCountRaw(p, new)
    }
    @inline(__always) static func next(_ p: UnsafeMutablePointer<UInt64>) -> UInt32 {
        UInt32(truncatingIfNeeded: p[meta] >> 32)
    }
    @inline(__always) static func setNext(_ p: UnsafeMutablePointer<UInt64>, _ n: UInt32) {
        p[meta] = (p[meta] & 0xFFFF_FFFF) | (UInt64(n) << 32)
    }
}

/// Owner of the node pool: one anonymous mapping (`mmap`), so that the pool's resident size is
/// what is actually touched, and growing it (map, copy, unmap) returns the old pages to the
/// kernel instead of leaving them behind in the malloc heap. The smallest pool is one 4 KiB page
/// (4 nodes).
final class _NodePool: @unchecked Sendable {
    // @unchecked: the pool is only mutated through a uniquely referenced `AttributeTree`
    // (copy-on-write); shared pools are read-only.
    let base: UnsafeMutablePointer<UInt64>
    /// Capacity in nodes.
    let capacity: Int

    init(capacity: Int) {
        precondition(capacity >= 1 && capacity <= Int(UInt32.max - 1), "attribute tree node pool too large")
        let bytes = capacity * _Node.stride * MemoryLayout<UInt64>.stride
        self.capacity = capacity
        guard let raw = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              raw != UnsafeMutableRawPointer(bitPattern: -1)
        else { fatalError("attribute tree: mmap of \(bytes) bytes failed") }
        base = raw.bindMemory(to: UInt64.self, capacity: capacity * _Node.stride)
    }

    deinit {
        munmap(UnsafeMutableRawPointer(base), capacity * _Node.stride * MemoryLayout<UInt64>.stride)
    }


    /// A pool of `capacity` nodes holding a copy of the first `used` nodes of `self`.
    func copy(capacity newCapacity: Int, used: Int) -> _NodePool {
        let p = _NodePool(capacity: newCapacity)
        p.base.initialize(from: base, count: used * _Node.stride)
        return p
    }
}
