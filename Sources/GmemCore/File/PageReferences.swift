import GmemABI
/// Page references held through open files: gmemfs's stand-in for the kernel's elevated folio
/// refcounts (GUP pins taken by DMA, vhost, O_DIRECT into guest memory, …), which make a
/// to-private conversion fail with EAGAIN (docs/semantics.md, "Page references").
///
/// A reference belongs to one *holder* (the daemon uses the FUSE file handle, i.e. one open file
/// description) and counts per page: pinning a range twice needs two unpins. References are
/// dropped by ``unpin(_:holder:)`` or all at once by ``release(holder:)``.
///
/// Invariants:
/// - `total.load(p)` is the sum over holders of `byHolder[h].load(p)`, for every page `p`.
/// - `count` is the sum of `total` over all pages.
/// - No holder's map is all zero (a holder that holds nothing has no entry).
/// - Every per-holder count is at most ``maximumPerPage``.
///
/// Not thread-safe: the owner keeps it behind a lock (``GuestMemFile`` uses a leaf mutex).
public struct PageReferences: Sendable {
    /// The most references one holder may keep on one page. A pin past it is ENOMEM, as a
    /// folio refcount overflow makes `try_grab_folio` fail in the kernel.
    public static let maximumPerPage: UInt64 = GmemLimit.referencesPerPageMax

    public let pageCount: UInt64
    /// References per page, per holder.
    private var byHolder: [UInt64: AttributeTree] = [:]
    /// References per page, all holders together (nil while nothing is held).
    private var total: AttributeTree?
    /// Page references held, all pages and holders together (a pin of `n` pages adds `n`).
    public private(set) var count: UInt64 = 0

    public init(pageCount: UInt64) {
        precondition(pageCount >= 1)
        self.pageCount = pageCount
    }

    /// Number of holders with at least one reference.
    public var holderCount: Int { byHolder.count }

    /// Pages with at least one reference.
    public var referencedPages: UInt64 {
        guard let total else { return 0 }
        var n: UInt64 = 0
        total.forEachRange(overlapping: 0...(pageCount - 1)) { r, v in
            if v != 0 { n += r.upperBound - r.lowerBound + 1 }
            return true
        }
        return n
    }

    /// The first page of `pages` with any reference, or nil. A conversion's `error_offset` is this
    /// page's offset (it is never below the request's start: `max(start, page)` in the kernel).
    public func firstReferenced(in pages: PageRange) -> UInt64? {
        total?.firstIndex(in: pages.indices, notEqualTo: 0)
    }

    /// References `holder` keeps on `page`.
    public func count(of holder: UInt64, page: UInt64) -> UInt64 {
        byHolder[holder]?.load(page) ?? 0
    }

    /// Takes one reference on each page of `pages` for `holder`. All or nothing: ENOMEM
    /// (``GmemError/outOfMemory(_:)``) if a page already carries ``maximumPerPage`` of the
    /// holder's references, and nothing is taken.
    public mutating func pin(_ pages: PageRange, holder: UInt64) throws(GmemError) {
        precondition(pages.last < pageCount)
        var mine = byHolder[holder] ?? AttributeTree(pageCount: pageCount, value: 0)
        if Self.segments(mine, pages.indices).contains(where: { $0.value >= Self.maximumPerPage }) {
            throw .outOfMemory("a page already carries \(Self.maximumPerPage) references of this open file")
        }
        Self.add(&mine, pages.indices, 1)
        var all = total ?? AttributeTree(pageCount: pageCount, value: 0)
        Self.add(&all, pages.indices, 1)
        byHolder[holder] = mine
        total = all
        count += pages.count
    }

    /// Drops one of `holder`'s references on each page of `pages`. All or nothing: if `holder`
    /// lacks a reference on any page, ENOENT (``GmemError/notReferenced(_:)``) and nothing is
    /// dropped.
    public mutating func unpin(_ pages: PageRange, holder: UInt64) throws(GmemError) {
        precondition(pages.last < pageCount)
        guard var mine = byHolder[holder], !Self.segments(mine, pages.indices).contains(where: { $0.value == 0 }) else {
            throw .notReferenced("this open file holds no reference on part of the range")
        }
        Self.add(&mine, pages.indices, -1)
        byHolder[holder] = mine.holds(0...(pageCount - 1), 0) ? nil : mine
        var all = total!
        Self.add(&all, pages.indices, -1)
        total = byHolder.isEmpty ? nil : all
        count -= pages.count
    }

    /// Drops every reference of `holder` (its open file was released). Returns how many page
    /// references went.
    @discardableResult
    public mutating func release(holder: UInt64) -> UInt64 {
        guard let mine = byHolder.removeValue(forKey: holder) else { return 0 }
        var dropped: UInt64 = 0
        if byHolder.isEmpty {
            total = nil
            dropped = count
        } else {
            var all = total!
            for (r, v) in Self.segments(mine, 0...(pageCount - 1)) where v != 0 {
                Self.add(&all, r, -Int64(v))
                dropped += v * (r.upperBound - r.lowerBound + 1)
            }
            total = all
        }
        count -= dropped
        return dropped
    }

    /// The maximal ranges of `tree` overlapping `pages`, clipped to them.
    private static func segments(_ tree: AttributeTree, _ pages: ClosedRange<UInt64>) -> [(range: ClosedRange<UInt64>, value: UInt64)] {
        var out: [(range: ClosedRange<UInt64>, value: UInt64)] = []
        tree.forEachRange(overlapping: pages) { r, v in
            out.append((max(r.lowerBound, pages.lowerBound)...min(r.upperBound, pages.upperBound), v))
            return true
        }
        return out
    }

    /// Adds `delta` to every page of `pages`. The callers guarantee no count leaves
    /// `0...maximumPerPage × holders` (checked above), so this cannot wrap.
    private static func add(_ tree: inout AttributeTree, _ pages: ClosedRange<UInt64>, _ delta: Int64) {
        for (r, v) in segments(tree, pages) {
            tree.store(r, delta >= 0 ? v + UInt64(delta) : v - UInt64(-delta))
        }
    }
}
