import CLinuxSys
import FuseKit
import Synchronization
import Glibc
import GmemABI
import GmemCore
import Logging
import SystemPackage

/// The data path: open and release, read, write (and writeback), fallocate, fsync, close
/// (FLUSH) and lseek.
extension GmemFilesystem {
    public func open(_ ctx: RequestContext, inode: InodeNumber, flags: Int32, reply: consuming Reply<OpenReply>) {
        guard let n = node(inode) else { return reply.error(.notFound("inode \(inode)")) }
        if n.isSpecial { return openSpecial(n, flags: flags, reply: reply) }
        guard let f = n.fileNode else { return reply.error(.isDirectory("inode \(inode)")) }
        let request: OpenRequest
        do throws(GmemError) { request = try OpenRequest(flags: flags) } catch {
            // `echo x > FILE`, `cp` and `tee` open with O_TRUNC: say why they fail.
            let hint = flags & O_TRUNC != 0 ? " (write in place: dd conv=notrunc)" : ""
            refused("open", on: n, ctx, error, hint: hint)
            return reply.error(error)
        }
        // An unlink may have freed the file between node() and here (the kernel can send OPEN
        // for a name removed after its lookup): it is gone, not openable.
        let live = f.lifetime.withLock { l -> Bool in
            if l.unlinked && l.openHandles == 0 { return false }
            l.openHandles += 1
            return true
        }
        guard live else { return reply.error(.notFound("file '\(f.name)' (removed)")) }
        // Both views of an mmap file are cached (and so can be mapped MAP_SHARED): the guest
        // view is what a VMM hands KVM as a memslot's memory.
        let cached = f.file.flags.contains(.mmap)
        // Kernel fidelity: a guest_memfd has no llseek, so lseek, pread and pwrite are ESPIPE.
        var nonseekable = false
        if case .host = n { nonseekable = !options.fidelity.hostFileSeekable }
        // The handle carries the access mode (for the ioctl's write check) and is unique: page
        // references belong to it.
        let handle = GmemFileHandle(access: request.access, serial: openCount.add(1, ordering: .relaxed).newValue)
        reply.open(OpenOptions(handle: handle.fileHandle, directIO: !cached, keepCache: cached,
                               nonseekable: nonseekable))
    }

    public func release(inode: InodeNumber, file: FileInfo) {
        if releaseSpecial(inode: inode, file: file) { return }
        guard let f = node(inode)?.fileNode else { return }
        releaseReferences(f, handle: file.handle)
        let gone = f.lifetime.withLock { l -> Bool in
            l.openHandles -= 1
            return l.unlinked && l.openHandles == 0
        }
        if gone {
            namespace.withLock { $0.drop(f) }
            logger.info("freed \(f.name)")
        }
    }

    public func read(_ ctx: RequestContext, inode: InodeNumber, offset: Int, size: Int, file: FileInfo, reply: consuming Reply<DataReply>) {
        guard let n = node(inode) else { return reply.error(.notFound("inode \(inode)")) }
        if n.isSpecial { return readSpecial(ctx, n, offset: offset, size: size, file: file, reply: reply) }
        guard let f = n.fileNode else { return reply.error(.isDirectory("inode \(inode)")) }
        let start: UInt64
        do throws(GmemError) { start = try GuestMemFile.offset(offset) } catch { return reply.error(error) }
        var view = GuestMemFile.View.guest
        if case .host = n { view = .host }
        let cached = f.file.flags.contains(.mmap) && file.flags & LinuxConstants.openDirect == 0
        // Kernel fidelity: a guest_memfd has no read; only page faults (and the kernel's own
        // page-ins) may fill the host's pages. Uncached files are only read by read(2).
        if view == .host {
            do throws(GmemError) {
                try options.fidelity.checkHostRead(buffered: cached) {
                    RequestingThread(ctx.pid).isReading(inode: f.hostInode, under: options.mountpoint)
                }
            } catch {
                return reply.error(error)
            }
        }
        // Guest view of an mmap file: bytes the host stored through a shared mapping may still be
        // dirty in the host's page cache. Write them back first (the invalidation launders dirty
        // pages), so the guest sees what the host wrote, as with the kernel's single shared page.
        if view == .guest, f.file.flags.contains(.mmap), f.file.hasSharedPage(offset: start, count: size) {
            invalidateHost(f, offset: start, length: UInt64(size), for: ctx)
        }
        // Host view filling its cache: the guest view's copies of these pages go after the reply
        // (never before: the kernel holds this READ's host folios locked, and a guest fill
        // invalidating the host would wait for them: docs/locking.md, "Two caches").
        let dropGuestCopies = view == .host && cached && hasTwoCaches(f) && f.file.hasSharedPage(offset: start, count: size)
        defer { if dropGuestCopies { afterReply(.host, f, offset: start, length: UInt64(size), for: ctx) } }
        // A short reply is fine without the page cache; with it, the kernel would take a short
        // read for EOF and shrink the file (docs/fuse-kernel-notes.md, "Short reads"), so those
        // get EACCES instead.
        // Under a memory cap, what enters the page cache is allocated first (docs/semantics.md,
        // "Memory"): a mapping can store to a cached page without asking the daemon.
        let allocating = cached && budget.limitPages != nil
        var pending = PendingReply(reply)
        do throws(GmemError) {
            try f.file.read(offset: start, count: size, view: view, allowShort: !cached, allocating: allocating) { bytes in
                pending.answer { $0.data(bytes) }
            }
        } catch {
            switch error {
            case .privatePage:
                // Only the page cache faults through READ; a populate loop there never ends by
                // itself: it gets zeros for the page, dropped once it has left the syscall
                // (PopulateGuard), or as a last resort SIGKILL. The kill goes first: the task
                // cannot send another READ before it lands.
                if cached {
                    switch populateGuard.refusedPrivate(tid: ctx.pid, file: f, offset: offset, size: size) {
                    case .zeros(let syscall):
                        // The ghosts are marked under the file's lock, before the reply: a
                        // conversion to shared sees them, a writeback into them is discarded.
                        let answered = f.file.readHidingPrivate(offset: start, count: size, allocating: allocating) { bytes, hidden in
                            f.ghosts.withLock { map in for p in hidden { map[p, default: 0] += 1 } }
                            pending.answer { $0.data(bytes) }
                            return hidden
                        }
                        if let hidden = answered {
                            trace(.readRefused, f, start, UInt64(size), .ok, ctx, detail: "cache=page populate=zeros")
                            populateGuard.answered(tid: ctx.pid, syscall: syscall, file: f, pages: hidden)
                            return
                        }
                    case .kill(let k): k.send()
                    case .refuse: break
                    }
                }
                trace(.readRefused, f, start, UInt64(size), .failed(error.errno), ctx, detail: cached ? "cache=page" : "cache=none")
            case .noSpace where allocating && size <= Int(pageSize):
                // One page past the cap: a fault gets SIGBUS; a populate loop retries forever.
                populateGuard.refusedPastCap(tid: ctx.pid, file: f, offset: offset, size: size)?.send()
            default:
                break
            }
            pending.take()?.error(error)
        }
    }

    public func write(_ ctx: RequestContext, inode: InodeNumber, offset: Int, data: UnsafeRawBufferPointer, file: FileInfo, reply: consuming Reply<WriteReply>) {
        guard let n = node(inode) else { return reply.error(.notFound("inode \(inode)")) }
        guard let f = n.fileNode else { return reply.error(.isDirectory("inode \(inode)")) }
        let began = events.start()
        do throws(GmemError) {
            let start = try GuestMemFile.offset(offset)
            if case .host = n {
                // Kernel fidelity: a guest_memfd has no write; dirty mapped pages still write back.
                try options.fidelity.checkHostWrite(writepage: file.isWritepage)
                // write(2) with a cached guest view: the guest's copies are dropped after the
                // reply (not before: the kernel holds this write's host folios locked).
                let written: Int
                do throws(GmemError) {
                    written = try writeHost(f, offset: start, data, writepage: file.isWritepage)
                } catch .noSpace(let why) where f.writebackError.record(.noSpace(why), writepage: file.isWritepage) {
                    logger.warning("\(f.name): writeback of [\(offset), +\(data.count)) lost: \(why) (reported on the next fsync or close)")
                    throw .noSpace(why)
                } catch .privatePage(let page) {
                    trace(.writeRefused, f, start, UInt64(data.count), .failed(GmemError.privatePage(offset: page).errno), ctx)
                    throw .privatePage(offset: page)
                } catch .noSpace(let why) {
                    // `>>` appends at the end of a file whose size never changes.
                    let hint = start >= f.file.size ? " (the size is fixed: appending cannot work)" : ""
                    refused("write [\(offset), +\(data.count))", on: n, ctx, .noSpace(why), hint: hint)
                    throw .noSpace(why)
                }
                f.touchModified()
                remember(.host, f, offset: start, length: UInt64(written))
                reply.written(written)
                afterReply(.host, f, offset: start, length: UInt64(written), for: ctx)
                return
            }
            // Guest view: the host may cache shared pages of this range. Flush the host's dirty
            // copies first (so that they cannot be written back over this write), write, then
            // drop whatever the host re-read in between. A writeback of the guest view's own
            // mapped pages skips the first step (the page stays under writeback until this reply;
            // the host's laundering could wait for it) and invalidates after its reply instead.
            let sharedTouched = f.file.hasSharedPage(offset: start, count: data.count)
            if sharedTouched && !file.isWritepage { invalidateHost(f, offset: start, length: UInt64(data.count), for: ctx) }
            let written = try f.file.write(offset: start, data, view: .guest)
            f.touchModified()
            trace(since: began, .guestWrite, f, start, UInt64(written), .ok, ctx, detail: file.isWritepage ? "via=writepage" : "")
            if file.isWritepage {
                if sharedTouched { remember(.guest, f, offset: start, length: UInt64(written)) }
                reply.written(written)
                // (A data invalidation also refreshes the host's attributes.)
                if sharedTouched {
                    afterReply(.guest, f, offset: start, length: UInt64(written), for: ctx)
                } else {
                    invalidateHostAttributes(f)
                }
                return
            }
            // (A data invalidation also refreshes the host's attributes: st_blocks may have grown.)
            if sharedTouched {
                invalidateHost(f, offset: start, length: UInt64(written), for: ctx)
            } else {
                invalidateHostAttributes(f)
            }
            reply.written(written)
        } catch {
            if case .guest = n {
                trace(since: began, .guestWrite, f, UInt64(clamping: offset), UInt64(data.count), .failed(error.errno), ctx)
            }
            reply.error(error)
        }
    }

    /// A host write; a writeback (`writepage`) skips the ghost pages in its range (zeros a
    /// populate loop was answered with for private pages: what was stored there never reaches
    /// the file, as the kernel would have refused the store with SIGBUS) and reports them written.
    func writeHost(_ f: FileNode, offset: UInt64, _ data: UnsafeRawBufferPointer, writepage: Bool) throws(GmemError) -> Int {
        guard writepage, !data.isEmpty, offset < f.file.size else {
            return try f.file.write(offset: offset, data, view: .host, writepage: writepage)
        }
        let last = (min(offset + UInt64(data.count), f.file.size) - 1) >> gmemPageShift
        let ghosts = Set(f.ghostPages(in: PageRange(first: offset >> gmemPageShift, last: last)))
        guard !ghosts.isEmpty else { return try f.file.write(offset: offset, data, view: .host, writepage: true) }
        var at = offset
        let end = offset + UInt64(data.count)
        while at < end {
            let next = min(end, ((at >> gmemPageShift) + 1) << gmemPageShift)
            if !ghosts.contains(at >> gmemPageShift) {
                let part = UnsafeRawBufferPointer(rebasing: data[Int(at - offset)..<Int(next - offset)])
                _ = try f.file.write(offset: at, part, view: .host, writepage: true)
            } else {
                logger.info("\(f.name): a store into the zero page answered for private offset \(at & ~(pageSize - 1)) discarded at writeback")
            }
            at = next
        }
        return data.count
    }

    public func fallocate(_ ctx: RequestContext, inode: InodeNumber, mode: Int32, offset: Int, length: Int, file: FileInfo, reply: consuming Reply<EmptyReply>) {
        guard let n = node(inode) else { return reply.error(.notFound("inode \(inode)")) }
        guard let f = n.fileNode else { return reply.error(.isDirectory("inode \(inode)")) }
        let began = events.start()
        // Traced before the reply, so that the trace's order is the order callers saw; a mode
        // kvm_gmem_fallocate refuses is traced as `allocate` unless it asks for a punch.
        let kind: Event.Kind = mode & Int32(FALLOC_FL_PUNCH_HOLE) != 0 ? .punch : .allocate
        do throws(GmemError) {
            let fallocateMode = try FallocateMode(flags: mode)
            try f.file.fallocate(fallocateMode, offset: offset, length: length)
            switch fallocateMode {
            case .punchHole:
                // The kernel drops the punching view's pages itself; the other view's are dropped here.
                if case .guest = n { invalidateHost(f, offset: UInt64(offset), length: UInt64(length), for: ctx) }
                if case .host = n, hasTwoCaches(f) { invalidate(.guest, f, offset: UInt64(offset), length: UInt64(length), for: ctx) }
                f.touchModified()
            case .allocate:
                // st_blocks grew; only attributes are invalidated, so this is safe while the
                // kernel holds the inode for this very fallocate.
                invalidateHostAttributes(f)
            }
            trace(since: began, kind, f, UInt64(offset), UInt64(length), .ok, ctx)
            reply.complete(nil)
        } catch {
            trace(since: began, kind, f, UInt64(clamping: offset), UInt64(clamping: length), .failed(error.errno), ctx)
            reply.error(error)
        }
    }

    /// The kernel's guest_memfd has no fsync (EINVAL, also for `msync(MS_SYNC)`); by default
    /// gmemfs answers success (its memory has no backing store to flush), or the recorded
    /// ``WritebackError``.
    public func fsync(_ ctx: RequestContext, inode: InodeNumber, file: FileInfo, reply: consuming Reply<EmptyReply>) {
        guard let n = node(inode) else { return reply.error(.notFound("inode \(inode)")) }
        if case .host = n {
            do throws(GmemError) { try options.fidelity.checkHostFsync() } catch { return reply.error(error) }
        }
        // The kernel wrote this view's dirty pages back before sending FSYNC: the other view's
        // copies of them go before the reply, so after msync(MS_SYNC) the other view reads them.
        if let f = n.fileNode, let side = n.side { syncOtherView(side, f, for: ctx) }
        guard case .host(let f) = n, let error = f.writebackError.take() else { return reply.complete(nil) }
        reply.error(error)
    }

    /// close(): ``WritebackError/takeAtClose(_:)``. The kernel runs the close's writeback
    /// before this FLUSH, so a failure of that writeback is seen here.
    public func flush(_ ctx: RequestContext, inode: InodeNumber, file: FileInfo, reply: consuming Reply<EmptyReply>) {
        guard let n = node(inode) else { return reply.error(.notFound("inode \(inode)")) }
        guard case .host(let f) = n, let error = f.writebackError.takeAtClose(options.fidelity) else { return reply.complete(nil) }
        reply.error(error)
    }

    public func lseek(_ ctx: RequestContext, inode: InodeNumber, offset: Int, whence: Int32, file: FileInfo, reply: consuming Reply<LseekReply>) {
        guard let n = node(inode) else { return reply.error(.notFound("inode \(inode)")) }
        guard let f = n.fileNode else { return reply.error(.isDirectory("inode \(inode)")) }
        do throws(GmemError) {
            let request = try SeekRequest(offset: offset, whence: whence)
            reply.offset(Int(try f.file.seek(offset: request.offset, whence: request.whence)))
        } catch {
            reply.error(error)
        }
    }
}
