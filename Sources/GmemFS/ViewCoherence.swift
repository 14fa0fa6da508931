import FuseKit
import GmemCore
import Synchronization

/// The two page caches of an `mmap` file with `--guest-view`: the host inode's and the guest
/// inode's. The kernel keeps one cache per FUSE inode and never relates them, so the daemon
/// carries bytes across with invalidations (docs/locking.md, "Two caches"):
///
/// - a conversion invalidates the views whose cached copies became wrong (to private: the host's
///   then the guest's; to shared: the guest's, which writes its dirty pages back first);
/// - a punch hole invalidates the view it did not come through (the kernel drops the other);
/// - a request through the guest view that fills or writes its cache (READ, `write(2)`)
///   invalidates the host's range first, so the host's dirty copies reach the store before it;
/// - a request through the host view (READ, `write(2)`) and a writeback through either view
///   (a writepage WRITE) invalidate the other view's range only after their reply, and remember
///   the range until the next FSYNC of their view (`fsync`, `msync(MS_SYNC)`), which invalidates
///   the other view's copies of every remembered range before it returns.
///
/// Only guest-view fills and writes invalidate before their reply: the kernel holds their guest
/// folios locked meanwhile, and if host-view requests did the same while holding host folios,
/// two fills of one page, one per view, would each wait for the other's folios (a deadlock).
struct WrittenBack {
    /// At most this many separate ranges are remembered; beyond, they merge into their span.
    static let capacity = 32
    private var ranges: [(offset: UInt64, length: UInt64)] = []

    mutating func add(offset: UInt64, length: UInt64) {
        guard length > 0 else { return }
        if let i = ranges.firstIndex(where: { $0.offset <= offset + length && offset <= $0.offset + $0.length }) {
            let lo = min(ranges[i].offset, offset), hi = max(ranges[i].offset + ranges[i].length, offset + length)
            ranges[i] = (lo, hi - lo)
        } else if ranges.count < Self.capacity {
            ranges.append((offset, length))
        } else {
            let lo = min(offset, ranges.map(\.offset).min()!)
            let hi = max(offset + length, ranges.map { $0.offset + $0.length }.max()!)
            ranges = [(lo, hi - lo)]
        }
    }

    /// The remembered ranges, forgotten.
    mutating func take() -> [(offset: UInt64, length: UInt64)] {
        defer { ranges = [] }
        return ranges
    }
}

/// What each view of a file changed, with the other view's copies dropped only after the reply,
/// since its last fsync.
struct WrittenBackByView {
    private var host = WrittenBack(), guest = WrittenBack()

    subscript(side: ViewSide) -> WrittenBack {
        get { side == .host ? host : guest }
        set { if side == .host { host = newValue } else { guest = newValue } }
    }
}

/// Which of a file's two inodes.
enum ViewSide: String, Sendable {
    case host, guest

    var other: ViewSide { self == .host ? .guest : .host }
}

extension FileNode {
    func inode(_ side: ViewSide) -> InodeNumber { side == .host ? hostInode : guestInode }
}

extension Node {
    /// The view a file inode is (nil for directories and special files).
    var side: ViewSide? {
        switch self {
        case .host: .host
        case .guest: .guest
        default: nil
        }
    }
}

extension GmemFilesystem {
    /// Whether both views of `f` may hold pages in the kernel's cache (an `mmap` file with the
    /// guest view exposed): only then does one view's cache need the other's invalidations.
    func hasTwoCaches(_ f: FileNode) -> Bool { options.guestView && f.file.flags.contains(.mmap) }

    /// Drops `side`'s cached pages of `[offset, offset + length)`, after writing its dirty ones
    /// back (FUSE WRITEs served by other threads), on behalf of `ctx`'s request. Call with no
    /// lock held.
    func invalidate(_ side: ViewSide, _ f: FileNode, offset: UInt64, length: UInt64, for ctx: RequestContext? = nil) {
        if side == .host { return invalidateHost(f, offset: offset, length: length, for: ctx) }
        let start = events.start()
        let e = notifier.invalidate(inode: f.guestInode, offset: Int(offset), length: Int(length))
        if let e { logger.warning("invalidating .guest/\(f.name) [\(offset), +\(length)) failed: \(e)") }
        trace(since: start, .invalidate, f, offset, length, e.map { .failed($0) } ?? .ok, ctx, detail: "view=guest")
    }

    /// Before replying to a request through `side` whose other-view invalidation waits for the
    /// reply: remembers the range for `side`'s next fsync.
    func remember(_ side: ViewSide, _ f: FileNode, offset: UInt64, length: UInt64) {
        guard hasTwoCaches(f) else { return }
        f.writtenBack.withLock { $0[side].add(offset: offset, length: length) }
    }

    /// After the reply to such a request: drops the other view's copies of the range.
    func afterReply(_ side: ViewSide, _ f: FileNode, offset: UInt64, length: UInt64, for ctx: RequestContext) {
        guard hasTwoCaches(f) else { return }
        invalidate(side.other, f, offset: offset, length: length, for: ctx)
    }

    /// fsync (and `msync(MS_SYNC)`, whose writeback the kernel finished before sending it) through
    /// `side`: the other view drops its copies of every range `side` remembered since the last one.
    func syncOtherView(_ side: ViewSide, _ f: FileNode, for ctx: RequestContext) {
        guard hasTwoCaches(f) else { return }
        for r in f.writtenBack.withLock({ $0[side].take() }) {
            invalidate(side.other, f, offset: r.offset, length: r.length, for: ctx)
        }
    }
}
