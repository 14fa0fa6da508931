import FuseKit
import GmemABI
import GmemCore

/// The bridge for page references (`GMEM_PIN_PAGES`/`GMEM_UNPIN_PAGES`) and armed faults
/// (`user.gmem.inject`); the rules are GmemCore's (docs/semantics.md, "Page references").
///
/// A reference belongs to the open file description it was taken through (the FUSE handle):
/// `dup`, `fork` and `SCM_RIGHTS` share it, and it lasts until unpinned or until the kernel
/// releases that description (the last close, also when its last holder dies).
extension GmemFilesystem {
    /// Pins or unpins the range of a `struct gmem_page_reference` for the open file `handle`.
    /// Any open file may pin (no write access needed: pinning changes nothing). Nothing is
    /// copied back; the caller replies.
    func reference(_ n: Node, _ f: FileNode, _ ctx: RequestContext, pin: Bool, input: UnsafeRawBufferPointer, handle: FuseFileHandle) throws(GmemError) {
        var range: (offset: UInt64, length: UInt64) = (0, 0)
        let pages: PageRange
        do throws(GmemError) {
            let request = try GmemPageReference(bytes: input)
            pages = try request.pages(fileSize: f.file.size)
            range = (request.offset, request.size)
            let view: GuestMemFile.View
            if case .guest = n { view = .guest } else { view = .host }
            if pin {
                try f.file.pin(pages, holder: handle.rawValue, view: view)
            } else {
                try f.file.unpin(pages, holder: handle.rawValue)
            }
            trace(pin ? .pin : .unpin, f, range.offset, range.length, .ok, ctx)
        } catch {
            trace(pin ? .pin : .unpin, f, range.offset, range.length, .failed(error.errno), ctx)
            throw error
        }
        logger.debug("\(f.name): \(pin ? "pinned" : "unpinned") pages \(pages) for handle \(handle)")
    }

    /// Drops the references of a released open file.
    func releaseReferences(_ f: FileNode, handle: FuseFileHandle) {
        let dropped = f.file.releaseReferences(holder: handle.rawValue)
        guard dropped > 0 else { return }
        trace(.unpin, f, 0, f.file.size, .ok, nil, detail: "on=close references=\(dropped)")
        logger.debug("\(f.name): released \(dropped) page reference(s) of handle \(handle)")
    }

    /// Arms a fault or clears them (`user.gmem.inject`).
    func inject(_ f: FileNode, _ ctx: RequestContext, _ command: InjectionCommand) throws(GmemError) {
        do throws(GmemError) {
            try f.file.inject(command)
        } catch {
            trace(.inject, f, 0, 0, .failed(error.errno), ctx)
            throw error
        }
        switch command {
        case .clear:
            trace(.inject, f, 0, 0, .ok, ctx, detail: "clear=all")
            logger.info("\(f.name): injected faults cleared")
        case .arm(let fault):
            trace(.inject, f, fault.offset ?? 0, fault.offset == nil ? 0 : pageSize, .ok, ctx,
                  detail: "arm=" + fault.failure.rawValue + " count=\(fault.remaining)")
            logger.info("\(f.name): armed \(fault.description)")
        }
    }
}
