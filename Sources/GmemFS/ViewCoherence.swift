import FuseKit
import GmemCore
import Synchronization

/// The two page caches of an `mmap` file with `--guest-view`: the host inode's and the guest
/// inode's. The kernel keeps one cache per FUSE inode and never relates them, so the daemon
/// carries bytes across with invalidations (docs/locking.md, "Two caches"):
///
/// - a conversion invalidates the views whose cached copies became wrong (to private: the host's
///   then the guest's; to shared: the guest's, which launders its dirty pages first);
/// - a punch hole invalidates the view it did not come through (the kernel drops the other);
/// - a `write(2)` through one view invalidates the other's range before (its dirty pages are
///   written back first, so they cannot land over this write later) and after (dropping what it
///   re-read meanwhile); a READ (a cache fill) through one view first launders the other's dirty
///   pages of the range;
/// - a writeback (a writepage WRITE) through one view invalidates the other's range after its
///   reply, and is remembered until the next `fsync` of that view (`msync(MS_SYNC)`), which
///   invalidates the other view's copies of every remembered range before it returns.
///
/// A writepage WRITE never invalidates before its reply: the kernel holds the page under
/// writeback until the reply, and the other view's laundering could come back to it (a cycle).
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

/// What each view of a file wrote back since its last fsync.
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
    func inode(_ side: ViewSide) -> UInt64 { side == .host ? hostInode : guestInode }
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

    /// After a writeback through `side` was stored and replied to: drops the other view's copies
    /// of the range now, and remembers it for `side`'s next fsync.
    func afterWriteback(_ side: ViewSide, _ f: FileNode, offset: UInt64, length: UInt64, for ctx: RequestContext) {
        guard hasTwoCaches(f) else { return }
        f.writtenBack.withLock { $0[side].add(offset: offset, length: length) }
        invalidate(side.other, f, offset: offset, length: length, for: ctx)
    }

    /// fsync (and `msync(MS_SYNC)`, whose writeback the kernel finished before sending it) through
    /// `side`: the other view drops its copies of every range `side` wrote back since the last one.
    func syncOtherView(_ side: ViewSide, _ f: FileNode, for ctx: RequestContext) {
        guard hasTwoCaches(f) else { return }
        for r in f.writtenBack.withLock({ $0[side].take() }) {
            invalidate(side.other, f, offset: r.offset, length: r.length, for: ctx)
        }
    }
}
