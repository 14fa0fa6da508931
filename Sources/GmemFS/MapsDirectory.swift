import FuseKit
import Glibc
import GmemABI
import GmemCore
import Synchronization

/// `MOUNTPOINT/.maps/NAME`: a file's attribute map as a file, of any length (the
/// `user.gmem.attributes` xattr stops at 64 KiB with E2BIG).
///
/// Contract:
/// - Contents: the lines of `user.gmem.attributes` (``AttributeLine``, the one printer), for
///   the whole file.
/// - Consistency: each open takes a **snapshot** of the map: a reader sees the map exactly as
///   it was at one instant (between two conversions), however long it takes to read. The file
///   lock is held shared only while the ranges are copied out (at most ~18 ms for 400,000 ranges in a release build),
///   never while the text is built or read; a conversion waits for at most that copy. Reopen
///   to see later conversions.
/// - Permissions: the same as reading `user.gmem.attributes` on the file: the file's owner and
///   group, and the read bits of its mode (`0600` → `0400`). The map is metadata anyone who may
///   read the file already sees; the guest view's rule (the daemon's user alone) would hide it
///   from the VMM user that owns the file.
/// - Size 0 and direct_io (as procfs files): read until a read returns 0.
final class MapsDirectory: Sendable {
    final class Snapshot: Sendable {
        let text: [UInt8]
        init(_ text: [UInt8]) { self.text = text }
    }

    private let snapshots = Mutex<(next: UInt64, byHandle: [FuseFileHandle: Snapshot])>((1, [:]))

    /// Snapshots the map of `file`; returns the handle.
    func open(_ file: GuestMemFile) -> FuseFileHandle {
        var ranges: [(UInt64, UInt64, MemoryAttributes)] = []
        ranges.reserveCapacity(64)
        file.forEachAttributeRange { ranges.append(($0, $1, $2)) }
        var text: [UInt8] = []
        text.reserveCapacity(ranges.count * 24)
        for (s, e, a) in ranges { text += AttributeLine.format(start: s, end: e, attribute: a.attributeName).utf8 }
        let snapshot = Snapshot(text)
        return snapshots.withLock { s in
            let h = FuseFileHandle(s.next)
            s.next += 1
            s.byHandle[h] = snapshot
            return h
        }
    }

    func release(handle: FuseFileHandle) { snapshots.withLock { _ = $0.byHandle.removeValue(forKey: handle) } }

    func read(handle: FuseFileHandle, offset: Int, size: Int, reply: consuming Reply<DataReply>) {
        guard let snapshot = snapshots.withLock({ $0.byHandle[handle] }) else { return reply.error(.badHandle("no map snapshot \(handle)")) }
        let start = min(max(0, offset), snapshot.text.count)
        let end = start + min(max(0, size), snapshot.text.count - start)
        var pending = PendingReply(reply)
        snapshot.text.withUnsafeBytes { text in pending.answer { $0.data(UnsafeRawBufferPointer(rebasing: text[start..<end])) } }
    }
}
