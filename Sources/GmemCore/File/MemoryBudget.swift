import Synchronization

/// The daemon-wide cap on allocated page memory (`--max-memory`), shared by all files.
public final class MemoryBudget: Sendable {
    /// Cap in pages; nil for none.
    public let limitPages: UInt64?
    private let used = Mutex<UInt64>(0)

    public init(limitBytes: UInt64?) { limitPages = limitBytes.map { $0 / pageSize } }

    /// Pages currently allocated across all files.
    public var usedPages: UInt64 { used.withLock { $0 } }

    /// Takes `pages` from the budget, or throws ENOSPC taking nothing.
    func reserve(_ pages: UInt64) throws(GmemError) {
        let ok = used.withLock { u -> Bool in
            let (n, o) = u.addingReportingOverflow(pages)
            if o || (limitPages.map { n > $0 } ?? false) { return false }
            u = n
            return true
        }
        guard ok else { throw .noSpace("memory limit reached") }
    }

    func release(_ pages: UInt64) {
        used.withLock { $0 -= min($0, pages) }
    }
}
