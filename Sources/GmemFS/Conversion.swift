import CLinuxSys
import FuseKit
import Synchronization
import Glibc
import GmemABI
import GmemCore
import Logging
import SystemPackage

/// Conversion orchestration: validate through GmemCore's rules, update the tree, then drop
/// the kernel's cached copies with no lock held; a refusal traced and replied with one errno.
extension GmemFilesystem {
    /// Makes the kernel re-read the host inode's attributes (`st_blocks`, times) after the guest
    /// view changed them. Call with no lock held.
    func invalidateHostAttributes(_ f: FileNode) {
        notifier.invalidate(inode: f.hostInode, offset: -1, length: 0)
    }

    /// Drops the host's cached pages of `[offset, offset + length)`, on behalf of `ctx`'s
    /// request. Call with no lock held.
    func invalidateHost(_ f: FileNode, offset: UInt64, length: UInt64, for ctx: RequestContext? = nil) {
        let start = events.start()
        let e = notifier.invalidate(inode: f.hostInode, offset: Int(offset), length: Int(length))
        if let e { logger.warning("invalidating \(f.name) [\(offset), +\(length)) failed: \(e)") }
        trace(since: start, .invalidate, f, offset, length, e.map { .failed($0) } ?? .ok, ctx)
    }

    /// The interface a conversion came through: it names the request in the trace and decides
    /// the errno a refused caller sees.
    enum ConversionInterface: String {
        case xattr, ioctl

        /// The interface as the kernel rules name it.
        var rules: InPlaceConversion.Interface { self == .xattr ? .xattr : .ioctl }

        /// The errno `error` reaches the caller as: through `setxattr` EAGAIN becomes EBUSY
        /// (``GmemError/setxattrErrno``).
        func errno(_ error: GmemError) -> Errno { self == .xattr ? error.setxattrErrno : error.errno }
    }

    /// A refused conversion, with the errno chosen once for its interface: the trace records it
    /// and the reply sends it.
    struct ConversionRefusal: Error {
        let error: GmemError
        /// What the caller gets (``ConversionInterface/errno(_:)``).
        let errno: Errno
        /// The validated request, when the refusal came after validation (references, an
        /// armed fault): the ioctl copies it back with `error_offset`.
        let request: ConversionRequest?
    }

    /// Runs a conversion to completion: refuse it when conversions are off (`--no-in-place`),
    /// validate (`make`), update the tree (under the file lock),
    /// then, with no lock held, drop the host's cached copies when pages became private. Returns
    /// once no process can read the converted pages' old contents. A refused conversion (bad
    /// input, references, an armed fault) throws a ``ConversionRefusal`` and changed nothing; it
    /// is traced with the refusal's errno and, when it names a page, its `error_offset`.
    func convert(_ f: FileNode, _ ctx: RequestContext, via: ConversionInterface,
                 _ make: () throws(GmemError) -> ConversionRequest) throws(ConversionRefusal) {
        let start = events.start()
        var request: ConversionRequest?
        do throws(GmemError) {
            try options.inPlaceConversion.checkConversion(via: via.rules)
            let r = try make()
            request = r
            let outcome = try f.file.setAttributes(r)
            switch outcome {
            case .becamePrivate:
                // The host's dirty pages are written back and its copies dropped (nothing private
                // may stay in its cache); then the guest's copies, which may predate those stores.
                invalidateHost(f, offset: r.offset, length: r.size, for: ctx)
                if hasTwoCaches(f) { invalidate(.guest, f, offset: r.offset, length: r.size, for: ctx) }
            case .becameShared:
                if !f.ghostPages(in: r.pages).isEmpty {
                    // Zero pages a populate loop was answered with must not pass for the contents.
                    invalidateHost(f, offset: r.offset, length: r.size, for: ctx)
                    f.ghosts.withLock { map in map = map.filter { !r.pages.contains($0.key) } }
                }
                // The guest's dirty pages are written back before the reply, so the host reads
                // the guest's latest stores; the host cached nothing of a private page.
                if hasTwoCaches(f) { invalidate(.guest, f, offset: r.offset, length: r.size, for: ctx) }
            case .unchanged: break
            }
            trace(since: start, .convert, f, r.offset, r.size, Event.Outcome(outcome), ctx,
                  detail: "via=\(via.rawValue) to=\(r.attributes.name)")
            logger.debug("\(f.name): [\(r.offset), +\(r.size)) -> \(r.attributes.name)")
        } catch {
            let refusal = ConversionRefusal(error: error, errno: via.errno(error), request: request)
            trace(since: start, .convert, f, request?.offset ?? 0, request?.size ?? 0,
                  .failed(refusal.errno), ctx,
                  detail: Self.refusalDetail(via: via, request, error))
            throw refusal
        }
    }

    /// `via=… [to=…] [error_offset=0x… cause=references|injected-…]` for a refused conversion.
    static func refusalDetail(via: ConversionInterface, _ request: ConversionRequest?, _ error: GmemError) -> String {
        var s = "via=" + via.rawValue
        if let request { s += " to=" + request.attributes.name }
        if let offset = error.errorOffset { s += " error_offset=0x" + String(offset, radix: 16) }
        switch error {
        case .referenced: s += " cause=references"
        case .injected(let failure, _): s += " cause=injected-" + failure.rawValue
        default: break
        }
        return s
    }
}
