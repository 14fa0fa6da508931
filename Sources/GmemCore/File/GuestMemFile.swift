import Locking
import Synchronization

/// One guest_memfd-like file: fixed size, sparse memory, and a private/shared attribute per page.
///
/// ## Locking (see docs/locking.md)
/// - `attributes` is the attribute tree behind its reader-writer lock, which plays the kernel's
///   `filemap_invalidate_lock`: it also orders page contents against conversions. Reads and
///   writes hold it **shared** from the attribute check until their bytes are copied (the FUSE
///   reply is written inside `read`'s closure); conversions and hole punches hold it **exclusive**.
/// - `allocation` (a mutex) guards the allocation map and the budget charge. It is taken inside
///   the attribute lock or alone (`seek`, `allocatedBytes`), never the other way round.
/// - `references` and `injector` (mutexes) are leaves: taken inside the attribute lock (a
///   conversion's check, a host-view pin) or alone (unpin, release, stats), never the other way round.
/// - Nothing here invalidates kernel caches: callers do that after the call returns, with no
///   lock held (FUSE deadlocks otherwise).
/// - A closure passed to this type (`read`'s `body`, `forEachAttributeRange`'s) runs with the
///   attribute lock held: it must not call back into the file (the lock is not recursive and
///   prefers writers, so a nested read deadlocks once a conversion waits).
public final class GuestMemFile: Sendable {
    /// Which side is accessing: the host obeys attributes; the guest sees every page.
    public enum View: Sendable { case host, guest }

    public let size: UInt64
    public let flags: GmemFlags
    public var pageCount: UInt64 { size >> pageShift }

    private let attributes: RWLocked<AttributeTree>
    private let allocation: Mutex<AllocationMap>          // inside attributes' lock, or alone
    private let store: PageStore
    private let budget: MemoryBudget
    private let conversionCount = Atomic<UInt64>(0)
    /// Page references (pins) by open file; a leaf mutex, taken inside the attribute lock or alone (GuestMemFile+References.swift).
    let references: Mutex<PageReferences>
    /// Armed faults (`user.gmem.inject`); a leaf mutex, taken inside the attribute lock or alone.
    let injector = Mutex(FaultInjector())
    /// Conversions refused with EAGAIN for references, and failures injected.
    let referenceRefusals = Atomic<UInt64>(0)
    let injectedFailures = Atomic<UInt64>(0)

    /// Creates the file: every page private, or shared with ``GmemFlags/initShared``.
    /// Size rules are ``CreateRequest``'s; a size past ``PageStore/maximumSize`` is EFBIG.
    public init(size: UInt64, flags: GmemFlags, budget: MemoryBudget) throws(GmemError) {
        try CreateRequest.validate(size: size)
        guard flags.isSubset(of: .all) else { throw .invalidArgument("unknown flags") }
        self.size = size
        self.flags = flags
        self.budget = budget
        store = try PageStore(size: size)
        let initial = flags.contains(.initShared) ? MemoryAttributes.shared : .private
        attributes = RWLocked(AttributeTree(pageCount: size >> pageShift, value: initial.rawValue))
        allocation = Mutex(AllocationMap(pageCount: size >> pageShift))
        references = Mutex(PageReferences(pageCount: size >> pageShift))
    }

    deinit {
        // Return the memory before the budget, so that whoever sees the budget drop also sees
        // the memory gone (the mapping itself is unmapped right after, with the store).
        if pageCount > 0 { store.discard(pages: PageRange(first: 0, last: pageCount - 1)) }
        budget.release(allocation.withLock { $0.allocatedPages })
    }

    // MARK: - Queries

    /// The attributes of the page holding byte `offset`. Requires `offset < size`.
    public func attributes(at offset: UInt64) -> MemoryAttributes {
        attributes.withReadLock { MemoryAttributes(rawValue: $0.load(offset >> pageShift)) }
    }

    /// True if any page overlapping `[offset, offset + count)` (clipped to the file) is shared.
    public func hasSharedPage(offset: UInt64, count: Int) -> Bool {
        guard let pages = pages(offset: offset, count: UInt64(count)) else { return false }
        return attributes.withReadLock { !$0.holds(pages.indices, MemoryAttributes.private.rawValue) }
    }

    public var allocatedBytes: UInt64 { allocation.withLock { $0.allocatedPages } << pageShift }

    /// A snapshot of the counters shown by `user.gmem.stats`.
    public struct Stats: Sendable {
        public var size: UInt64, allocatedBytes: UInt64, privateBytes: UInt64, ranges: Int, conversions: UInt64
        /// Page references held, bytes of referenced pages, EAGAIN refusals for references, injected failures.
        public var references: UInt64 = 0, referencedBytes: UInt64 = 0, referenceRefusals: UInt64 = 0, injectedFailures: UInt64 = 0
    }

    public var stats: Stats {
        attributes.withReadLock { tree in
            var privatePages: UInt64 = 0
            tree.forEachRange(overlapping: 0...(pageCount - 1)) { r, v in
                if MemoryAttributes(rawValue: v).isPrivate { privatePages += r.upperBound - r.lowerBound + 1 }
                return true
            }
            var s = Stats(size: size, allocatedBytes: allocatedBytes, privateBytes: privatePages << pageShift,
                          ranges: tree.rangeCount, conversions: conversionCount.load(ordering: .relaxed))
            addReferenceStats(&s)
            return s
        }
    }

    /// Calls `body` with each maximal attribute range overlapping the byte window `[start, end)`
    /// (clipped to it and to the file), as byte offsets with an exclusive end. `body` runs with
    /// the attribute lock held shared: it must not call back into the file.
    public func forEachAttributeRange(start: UInt64 = 0, end: UInt64 = .max,
                                      _ body: (_ start: UInt64, _ end: UInt64, MemoryAttributes) -> Void) {
        let end = min(end, size)
        guard start < end else { return }
        attributes.withReadLock { tree in
            tree.forEachRange(overlapping: (start >> pageShift)...((end - 1) >> pageShift)) { r, v in
                body(max(r.lowerBound << pageShift, start), min((r.upperBound + 1) << pageShift, end), MemoryAttributes(rawValue: v))
                return true
            }
        }
    }

    /// Pages overlapping `[offset, offset + count)` clipped to the file; nil if empty.
    private func pages(offset: UInt64, count: UInt64) -> PageRange? {
        guard count > 0, offset < size else { return nil }
        let end = min(size, offset &+ count < offset ? size : offset + count)
        return PageRange(coveringOffset: offset, size: end - offset)
    }

    // MARK: - Data

    /// Reads up to `count` bytes at `offset` and hands them to `body` **while the lock is held
    /// shared**, so no conversion can happen between the attribute check and the copy out.
    /// `body` must not call back into the file (see "Locking" above).
    ///
    /// - Host view: bytes of private pages are never returned. If the first page is private the
    ///   read fails with ``GmemError/privatePage(offset:)``; if a later page is, the read stops at
    ///   that page (a short read) when `allowShort`, and fails otherwise (buffered FUSE files must
    ///   not reply short: the kernel would shrink the file).
    /// - At or past the end of the file: zero bytes.
    /// - `allocating` (a read that fills the host's page cache under a memory cap): the pages
    ///   returned are allocated first, as the kernel's guest_memfd allocates a page when it is
    ///   faulted in, because a cached page can later be stored to through a mapping without the
    ///   daemon hearing of it until writeback, too late to refuse. A read that would allocate
    ///   more than one page fails with ENOSPC allocating nothing (the kernel's readahead: it then
    ///   reads the page it needs alone, so only pages really touched are charged); one that would
    ///   take the budget past the cap fails with ENOSPC. Allocated pages cost nothing more.
    public func read<R>(offset: UInt64, count: Int, view: View, allowShort: Bool, allocating: Bool = false,
                        _ body: (UnsafeRawBufferPointer) -> R) throws(GmemError) -> R {
        guard let pages = pages(offset: offset, count: UInt64(count)) else { return body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        return try attributes.withReadLock { (tree) throws(GmemError) -> R in
            var end = min(size, (pages.last + 1) << pageShift, offset + UInt64(count))
            if view == .host, let p = tree.firstIndex(in: pages.indices, notEqualTo: MemoryAttributes.shared.rawValue) {
                let boundary = p << pageShift
                guard allowShort, boundary > offset else { throw .privatePage(offset: max(boundary, offset)) }
                end = boundary
            }
            if allocating {
                try allocation.withLock { (a: inout AllocationMap) throws(GmemError) in
                    let returned = PageRange(coveringOffset: offset, size: end - offset)
                    let holes = a.holes(in: returned)
                    guard holes <= 1 else { throw .noSpace("a read would allocate \(holes) pages at once (readahead)") }
                    try a.allocate(returned, budget: budget)
                }
            }
            return body(UnsafeRawBufferPointer(store.bytes(at: offset, count: Int(end - offset))))
        }
    }

    /// A read of the host view that answers **zeros for every private page** instead of
    /// refusing: what the daemon gives the kernel's populate loop, which would otherwise retry a
    /// refused page forever (docs/semantics.md, "Populating and locking private pages"). Shared
    /// pages read as usual. `body` gets the bytes and the private pages zeroed, **while the lock
    /// is held shared**, so a conversion cannot happen between the check and the copy (the
    /// caller records the zeroed pages there). Nil, reading nothing, when `allocating` (a memory
    /// cap) and a shared page of the range is unallocated: such a page must be charged first,
    /// which is the ordinary read's job. At or past the end of the file: zero bytes.
    public func readHidingPrivate<R>(offset: UInt64, count: Int, allocating: Bool,
                                     _ body: (UnsafeRawBufferPointer, [UInt64]) -> R) -> R? {
        guard let pages = pages(offset: offset, count: UInt64(count)) else { return body(UnsafeRawBufferPointer(start: nil, count: 0), []) }
        return attributes.withReadLock { (tree) -> R? in
            let end = min(size, (pages.last + 1) << pageShift, offset + UInt64(count))
            var hidden: [UInt64] = []
            var sharedPages: [PageRange] = []
            tree.forEachRange(overlapping: pages.indices) { r, v in
                let clipped = PageRange(first: max(r.lowerBound, pages.first), last: min(r.upperBound, pages.last))
                if v == MemoryAttributes.shared.rawValue { sharedPages.append(clipped) } else { hidden += Array(clipped) }
                return true
            }
            if allocating, sharedPages.contains(where: { r in allocation.withLock { $0.holes(in: r) } > 0 }) { return nil }
            // Zeros, then the shared ranges copied in: a private byte is never read.
            var bytes = [UInt8](repeating: 0, count: Int(end - offset))
            for r in sharedPages {
                let from = max(r.offset, offset), to = min(r.offset + r.size, end)
                guard from < to else { continue }
                bytes.withUnsafeMutableBytes { b in
                    b.baseAddress!.advanced(by: Int(from - offset)).copyMemory(from: store.bytes(at: from, count: Int(to - from)).baseAddress!, byteCount: Int(to - from))
                }
            }
            return bytes.withUnsafeBytes { body($0, hidden) }
        }
    }

    /// Writes `data` at `offset`; returns the number of bytes stored.
    ///
    /// - At or past the end of the file: ENOSPC (the size never changes); a write crossing the
    ///   end stores what fits.
    /// - Host view: never stores into a private page. If the first page is private: EACCES;
    ///   otherwise the write stops at the first private page (a short write).
    /// - `writepage`: the kernel laundering a page dirtied through a shared mapping. Such data was
    ///   written while the page was shared, so it is kept even if the page has been converted
    ///   since (in-place conversion keeps contents; see docs/semantics.md).
    /// - Newly touched pages are charged to the memory budget first: ENOSPC stores nothing.
    public func write(offset: UInt64, _ data: UnsafeRawBufferPointer, view: View, writepage: Bool = false) throws(GmemError) -> Int {
        guard offset < size else { throw .noSpace("write at or past the end of the file") }
        guard let pages = pages(offset: offset, count: UInt64(data.count)) else { return 0 }
        return try attributes.withReadLock { (tree) throws(GmemError) -> Int in
            var end = min(size, offset + UInt64(data.count))
            if view == .host, !writepage,
               let p = tree.firstIndex(in: pages.indices, notEqualTo: MemoryAttributes.shared.rawValue) {
                let boundary = p << pageShift
                guard boundary > offset else { throw .privatePage(offset: offset) }
                end = boundary
            }
            let n = Int(end - offset)
            try allocation.withLock { (a: inout AllocationMap) throws(GmemError) in
                try a.allocate(PageRange(coveringOffset: offset, size: end - offset), budget: budget)
            }
            store.bytes(at: offset, count: n).copyMemory(from: UnsafeRawBufferPointer(rebasing: data[..<n]))
            return n
        }
    }

    // MARK: - fallocate

    /// `FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE`: frees the pages (they read as zeros) and keeps
    /// their attributes. Page-aligned offset and length required (EINVAL,
    /// ``FallocateMode/checkAlignment(offset:length:)``); a range at or past the
    /// end of the file is a no-op, one crossing it is clipped.
    public func punchHole(offset: UInt64, length: UInt64) throws(GmemError) {
        try FallocateMode.checkAlignment(offset: offset, length: length)
        guard let pages = pages(offset: offset, count: length) else { return }
        attributes.withWriteLock { _ in
            store.discard(pages: pages)
            allocation.withLock { $0.free(pages, budget: budget) }
        }
    }

    /// `FALLOC_FL_KEEP_SIZE`: allocates the pages. Page-aligned offset and length required
    /// (EINVAL, ``FallocateMode/checkAlignment(offset:length:)``); `offset + length` past
    /// the end is EINVAL; past the memory cap, ENOSPC with nothing allocated.
    public func allocate(offset: UInt64, length: UInt64) throws(GmemError) {
        try FallocateMode.checkAlignment(offset: offset, length: length)
        let (end, overflow) = offset.addingReportingOverflow(length)
        guard !overflow, end <= size else { throw .invalidArgument("range past the end of the file") }
        guard let pages = pages(offset: offset, count: length) else { return }
        try attributes.withReadLock { (_) throws(GmemError) in
            try allocation.withLock { (a: inout AllocationMap) throws(GmemError) in try a.allocate(pages, budget: budget) }
        }
    }

    /// SEEK_DATA or SEEK_HOLE: the first offset at or after `offset` in data or in a hole (the
    /// end of the file counts as a hole). ENXIO at or past the end, or when no data follows.
    ///
    /// A page is a **hole** only if it is shared and unallocated: it reads as zeros, so a copy
    /// may skip it. Every private page is **data**, allocated or not: the host may not read it,
    /// so `cp`/`tar -S` must try (and fail with EACCES) rather than write zeros for it.
    public func seek(offset: UInt64, whence: SeekWhence) throws(GmemError) -> UInt64 {
        guard offset < size else { throw .noSuchOffset(Int64(clamping: offset)) }
        let last = pageCount - 1
        let privateValue = MemoryAttributes.private.rawValue, sharedValue = MemoryAttributes.shared.rawValue
        let found: UInt64? = attributes.withReadLock { tree in
            allocation.withLock { a -> UInt64? in
                var p = offset >> pageShift
                if whence == .data {
                    let firstPrivate = tree.firstIndex(in: p...last, notEqualTo: sharedValue)
                    let firstAllocated = a.map.firstIndex(in: p...last, notEqualTo: AllocationMap.hole)
                    switch (firstPrivate, firstAllocated) {
                    case let (x?, y?): return min(x, y)
                    case let (x, y): return x ?? y
                    }
                }
                // A hole: the first page that is both shared and unallocated. Alternate between
                // the two maps; each step moves past at least one range of one of them.
                while true {
                    guard let shared = tree.firstIndex(in: p...last, notEqualTo: privateValue) else { return nil }
                    guard let unallocated = a.map.firstIndex(in: shared...last, notEqualTo: AllocationMap.allocated) else { return nil }
                    if tree.load(unallocated) == sharedValue { return unallocated }
                    p = unallocated
                }
            }
        }
        guard let page = found else {
            if whence == .data { throw .noSuchOffset(Int64(clamping: offset)) }
            return size
        }
        return max(offset, page << pageShift)
    }

    // MARK: - Conversion

    /// Runs `body` with the lock held shared, passing the first private page of `pages` (nil if
    /// every page is shared).
    func withFirstPrivatePage<R, E>(in pages: PageRange, _ body: (UInt64?) throws(E) -> R) throws(E) -> R {
        try attributes.withReadLock { (tree: borrowing AttributeTree) throws(E) -> R in
            try body(tree.firstIndex(in: pages.indices, notEqualTo: MemoryAttributes.shared.rawValue))
        }
    }

    /// What a conversion did, so the caller knows what to invalidate.
    public enum ConversionOutcome: Sendable, Equatable {
        /// Every page already had the attributes: nothing changed (the kernel's early return).
        case unchanged
        /// Some pages became private: the host's cached copies must be dropped.
        case becamePrivate
        /// Some pages became shared.
        case becameShared
    }

    /// Sets the attributes of the request's pages, keeping their contents (in-place conversion).
    /// The request was validated when it was made. A request that would change the map can still
    /// fail, before anything changes (all or nothing): with an armed fault
    /// (``GmemError/injected(_:errorOffset:)``), or, going to private, with
    /// ``GmemError/referenced(offset:)`` for the first page that has references.
    ///
    /// The caller must, **after this returns and with no lock held**, invalidate the host's page
    /// cache for the range when the outcome is ``ConversionOutcome/becamePrivate``, and only then
    /// report success.
    @discardableResult
    public func setAttributes(_ request: ConversionRequest) throws(GmemError) -> ConversionOutcome {
        precondition(request.offset + request.size <= size, "request made for another file")
        return try attributes.withWriteLock { (tree: inout AttributeTree) throws(GmemError) -> ConversionOutcome in
            let value = request.attributes.rawValue
            if tree.holds(request.pages.indices, value) { return .unchanged }
            try checkFailures(request)
            tree.store(request.pages.indices, value)
            conversionCount.add(1, ordering: .relaxed)
            return request.attributes.isPrivate ? .becamePrivate : .becameShared
        }
    }
}

/// Which pages hold memory: a second attribute tree (1 = allocated, 0 = hole) and its count.
struct AllocationMap: ~Copyable {
    static let hole: UInt64 = 0
    static let allocated: UInt64 = 1
    var map: AttributeTree
    var allocatedPages: UInt64 = 0

    init(pageCount: UInt64) { map = AttributeTree(pageCount: pageCount, value: Self.hole) }

    private func count(_ pages: PageRange, _ value: UInt64) -> UInt64 {
        var n: UInt64 = 0
        map.forEachRange(overlapping: pages.indices) { r, v in
            if v == value { n += min(r.upperBound, pages.last) - max(r.lowerBound, pages.first) + 1 }
            return true
        }
        return n
    }

    /// Unallocated pages in `pages`.
    func holes(in pages: PageRange) -> UInt64 { count(pages, Self.hole) }

    mutating func allocate(_ pages: PageRange, budget: MemoryBudget) throws(GmemError) {
        if map.holds(pages.indices, Self.allocated) { return }
        let new = count(pages, Self.hole)
        try budget.reserve(new)
        map.store(pages.indices, Self.allocated)
        allocatedPages += new
    }

    mutating func free(_ pages: PageRange, budget: MemoryBudget) {
        if map.holds(pages.indices, Self.hole) { return }
        let old = count(pages, Self.allocated)
        map.store(pages.indices, Self.hole)
        allocatedPages -= old
        budget.release(old)
    }
}
