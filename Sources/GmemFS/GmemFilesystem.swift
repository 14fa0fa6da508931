import CLinuxSys
import FuseKit
import Synchronization
import Glibc
import GmemABI
import GmemCore
import Logging
import SystemPackage

/// Options of a mounted gmemfs.
public struct GmemOptions: Sendable {
    /// Expose `MOUNTPOINT/.guest/NAME` (the guest's view: attributes ignored).
    public var guestView = false
    /// Cap on allocated page memory, in bytes.
    public var maxMemory: UInt64?
    /// How closely host files follow the kernel's guest_memfd (`--kernel-compat`).
    public var fidelity: Fidelity = .tools
    /// Whether conversions exist (`--no-in-place` turns them off, as on a kernel without
    /// in-place conversion).
    public var inPlaceConversion: InPlaceConversion = .enabled
    /// The absolute path the file system is mounted on (to recognise the requester's file).
    public var mountpoint = "/"
    public init(guestView: Bool = false, maxMemory: UInt64? = nil, fidelity: Fidelity = .tools) {
        self.guestView = guestView; self.maxMemory = maxMemory; self.fidelity = fidelity
    }
}

/// gmemfs served through FuseKit: the mount root plays the VM fd (files are created with the
/// `user.gmem.create` xattr), each file is a ``GuestMemFile``.
///
/// Kernel caching: files with the `mmap` flag use the page cache in both views (each inode its
/// own cache) and keep it across opens; the daemon drops cached pages itself wherever contents
/// or attributes change behind the kernel's back (conversions, writes and punches through the
/// other view: ``WrittenBack``), always with no lock held. Files without `mmap` are direct_io.
///
/// Metadata caching: host names are cached for an hour (a host name only goes away through
/// unlink, which the kernel sees; a failed lookup is never cached), guest names never (see
/// ``entryTimeout(_:)``), and host attributes for a second. The kernel
/// refreshes `st_blocks` itself after its own writes, punches and invalidations; the daemon
/// invalidates the host inode's attributes when the guest view changes its allocation. The guest
/// view's attributes are never cached. Without this, every path-based call (`setfattr`, `open`)
/// cost three extra round trips (LOOKUP and two GETATTRs).
public final class GmemFilesystem: LowLevelFilesystem {
    let options: GmemOptions
    let notifier: Notifier
    let budget: MemoryBudget
    let logger: Logger
    let namespace = Mutex(Namespace())
    let rootMetadata: Mutex<Metadata>
    let daemonUID = getuid()
    let daemonGID = getgid()
    let populateGuard: PopulateGuard
    /// Where handlers report what they did (``TraceFile`` reads it).
    let events = EventHub()
    let trace: TraceFile
    let maps = MapsDirectory()
    /// Numbers open files: the handle is ``AccessMode/handle(serial:)`` of it, so that page
    /// references can belong to one open file description.
    let openCount = Atomic<UInt64>(0)

    public init(options: GmemOptions, notifier: Notifier, logger: Logger) {
        self.options = options
        self.notifier = notifier
        self.logger = logger
        budget = MemoryBudget(limitBytes: options.maxMemory)
        populateGuard = PopulateGuard(logger: logger) { f, first, count in
            let e = notifier.invalidate(inode: f.hostInode, offset: Int(first << gmemPageShift), length: Int(count << gmemPageShift))
            if let e { logger.warning("dropping the zero pages answered for \(f.name) at offset \(first << gmemPageShift) failed: \(e)") }
        }
        trace = TraceFile(events: events)
        rootMetadata = Mutex(Metadata(mode: S_IFDIR | 0o755, uid: getuid(), gid: getgid()))
    }

    // MARK: - Files

    /// Creates a file (what `user.gmem.create` does). EEXIST for a taken name.
    @discardableResult
    public func createFile(_ request: CreateRequest) throws(GmemError) -> GuestMemFile {
        let file = try GuestMemFile(size: request.size, flags: request.flags, budget: budget)
        let node = try namespace.withLock { (ns: inout Namespace) throws(GmemError) in
            try ns.insert(request.name) { ino in
                FileNode(name: request.name, file: file, hostInode: ino,
                         metadata: Metadata(mode: S_IFREG | 0o600, uid: daemonUID, gid: daemonGID))
            }
        }
        logger.info("created \(request.name): \(request.size) bytes, flags [\(request.flags.description)]")
        return node.file
    }

    func node(_ inode: UInt64) -> Node? {
        switch inode {
        case FixedInode.root: return .root
        case FixedInode.guestDirectory: return options.guestView ? .guestDirectory : nil
        case FixedInode.trace: return .trace
        case FixedInode.mapsDirectory: return .mapsDirectory
        case _ where inode & MapsDirectory.inodeBit != 0:
            return namespace.withLock { ns in ns.byInode[inode & ~MapsDirectory.inodeBit].map { .map($0) } }
        default:
            let host = inode & ~1 == inode  // file inodes are allocated in even/odd pairs from an even base
            return namespace.withLock { ns in
                ns.byInode[inode & ~1].map { host ? .host($0) : .guest($0) }
            }
        }
    }

    func stat(of node: Node, inode: UInt64) -> stat {
        var st = Glibc.stat()
        st.st_ino = UInt(inode)
        st.st_nlink = 1
        switch node {
        case .trace, .mapsDirectory, .map:
            specialStat(node, into: &st)
        case .root, .guestDirectory:
            let m = node.isRoot ? rootMetadata.withLock { $0 } : Metadata(mode: S_IFDIR | 0o700, uid: daemonUID, gid: daemonGID)
            st.st_mode = m.mode; st.st_uid = m.uid; st.st_gid = m.gid
            st.st_nlink = 2
            st.st_atim = m.atime; st.st_mtim = m.mtime; st.st_ctim = m.ctime
        case .host(let f), .guest(let f):
            var m = f.metadata.withLock { $0 }
            if case .guest = node { m.mode = S_IFREG | 0o600; m.uid = daemonUID; m.gid = daemonGID }
            st.st_mode = m.mode; st.st_uid = m.uid; st.st_gid = m.gid
            st.st_atim = m.atime; st.st_mtim = m.mtime; st.st_ctim = m.ctime
            st.st_nlink = f.lifetime.withLock { $0.unlinked } ? 0 : 1
            st.st_size = Int(f.file.size)
            if case .guest = node {
                st.st_blocks = 0   // the memory is the host file's: `du` must count it once
            } else {
                st.st_blocks = options.fidelity.hostBlocks(allocatedBytes: f.file.allocatedBytes)
            }
        }
        st.st_blksize = Int(pageSize)
        return st
    }

    func entry(_ node: Node, inode: UInt64) -> EntryParameters {
        EntryParameters(inode: inode, attributes: stat(of: node, inode: inode),
                        attributeTimeout: Self.attributeTimeout(node), entryTimeout: Self.entryTimeout(node))
    }

    /// Seconds the kernel may cache a name. Host names: an hour (a host name goes away only
    /// through an unlink, which the kernel sees and drops). Guest names: never cached. `rm M/NAME`
    /// removes `.guest/NAME` behind the kernel's back; a cached guest entry would point at the
    /// old inode after a re-create (ENOENT for an hour). Invalidating it instead
    /// (`notify_inval_entry`) from the unlink or create handler deadlocks: the kernel holds the
    /// parent directory's lock while that request is in flight. See docs/semantics.md.
    static func entryTimeout(_ node: Node) -> Double {
        if case .guest = node { return 0 }
        return 3600
    }

    /// Seconds the kernel may cache a node's attributes.
    static func attributeTimeout(_ node: Node) -> Double {
        switch node {
        case .guest, .map: return 0   // (a map's mode follows its file's)
        default: return 1
        }
    }

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

    // MARK: - LowLevelFilesystem

    public func lookup(_ ctx: RequestContext, parent: UInt64, name: String, reply: consuming Reply<EntryReply>) {
        switch (node(parent), name) {
        case (.root?, GmemSpecialName.trace), (.root?, GmemSpecialName.maps), (.mapsDirectory?, _):
            lookupSpecial(parent: parent, name: name, reply: reply)
        case (.root?, GmemSpecialName.guest) where options.guestView:
            reply.entry(entry(.guestDirectory, inode: FixedInode.guestDirectory))
        case (.root?, _):
            guard let f = namespace.withLock({ $0[name] }) else { return reply.error(.notFound("file '\(name)'")) }
            reply.entry(entry(.host(f), inode: f.hostInode))
        case (.guestDirectory?, _):
            guard let f = namespace.withLock({ $0[name] }) else { return reply.error(.notFound("file '\(name)'")) }
            reply.entry(entry(.guest(f), inode: f.guestInode))
        case (nil, _): reply.error(.notFound("inode \(parent)"))
        default: reply.error(.notDirectory("inode \(parent)"))
        }
    }

    public func getattr(_ ctx: RequestContext, inode: UInt64, reply: consuming Reply<AttrReply>) {
        guard let n = node(inode) else { return reply.error(.notFound("inode \(inode)")) }
        reply.attr(stat(of: n, inode: inode), timeout: Self.attributeTimeout(n))
    }

    public func setattr(_ ctx: RequestContext, inode: UInt64, _ changes: SetAttributes, file: FileInfo?, reply: consuming Reply<AttrReply>) {
        guard let n = node(inode) else { return reply.error(.notFound("inode \(inode)")) }
        let ownerOrMode = changes.mode != nil || changes.uid != nil || changes.gid != nil
        do throws(GmemError) {
            try options.fidelity.checkSetattr(AttributeChanges(size: changes.size != nil, ownerOrMode: ownerOrMode), on: n.kind)
        } catch {
            return reply.error(error)
        }
        func apply(_ m: inout Metadata) {
            if let mode = changes.mode { m.mode = (m.mode & S_IFMT) | (mode & 0o7777) }
            if let uid = changes.uid { m.uid = uid }
            if let gid = changes.gid { m.gid = gid }
            if let t = changes.accessTime { m.atime = t }
            if let t = changes.modificationTime { m.mtime = t }
            clock_gettime(CLOCK_REALTIME, &m.ctime)
        }
        switch n {
        case .root: rootMetadata.withLock { apply(&$0) }
        case .host(let f): f.metadata.withLock { apply(&$0) }
        case .guestDirectory, .guest, .trace, .mapsDirectory, .map: break   // only times, which these ignore
        }
        reply.attr(stat(of: n, inode: inode), timeout: Self.attributeTimeout(n))
    }

    /// Offsets are cookies that stay valid while names come and go: 1, 2 and 3 follow `.`, `..`
    /// and `.guest`; a file's is its host inode (creation order, never reused), so removing an
    /// entry already listed cannot make a continued listing skip one that was not.
    public func readdir(_ ctx: RequestContext, inode: UInt64, offset: Int, size: Int, reply: consuming Reply<DirectoryReply>) {
        guard let n = node(inode) else { return reply.error(.notFound("inode \(inode)")) }
        var entries: [(name: String, inode: UInt64, mode: mode_t, cookie: UInt64)] =
            [(".", inode, S_IFDIR, 1), ("..", FixedInode.root, S_IFDIR, 2)]
        let files = namespace.withLock { $0.order }
        switch n {
        case .root:
            if options.guestView { entries.append((GmemSpecialName.guest, FixedInode.guestDirectory, S_IFDIR, 3)) }
            entries += files.map { ($0.name, $0.hostInode, S_IFREG, $0.hostInode) }
        case .guestDirectory:
            entries += files.map { ($0.name, $0.guestInode, S_IFREG, $0.hostInode) }
        case .mapsDirectory:
            entries += files.map { ($0.name, $0.hostInode | MapsDirectory.inodeBit, S_IFREG, $0.hostInode) }
        default: return reply.error(.notDirectory("inode \(inode)"))
        }
        var buffer = reply.makeBuffer(capacity: size)
        for e in entries where e.cookie > UInt64(max(0, offset)) {
            guard buffer.add(name: e.name, inode: e.inode, mode: e.mode, nextOffset: Int(e.cookie)) else { break }
        }
        reply.entries(buffer)
    }

    public func open(_ ctx: RequestContext, inode: UInt64, flags: Int32, reply: consuming Reply<OpenReply>) {
        guard let n = node(inode) else { return reply.error(.notFound("inode \(inode)")) }
        if n.isSpecial { return openSpecial(n, flags: flags, reply: reply) }
        guard let f = n.fileNode else { return reply.error(.isDirectory("inode \(inode)")) }
        let request: OpenRequest
        do throws(GmemError) { request = try OpenRequest(flags: flags) } catch { return reply.error(error) }
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
        let handle = request.access.handle(serial: openCount.add(1, ordering: .relaxed).newValue)
        reply.open(OpenOptions(handle: handle, directIO: !cached, keepCache: cached,
                               nonseekable: nonseekable))
    }

    public func release(inode: UInt64, file: FileInfo) {
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

    public func read(_ ctx: RequestContext, inode: UInt64, offset: Int, size: Int, file: FileInfo, reply: consuming Reply<DataReply>) {
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
        var pending: Reply<DataReply>? = consume reply
        do throws(GmemError) {
            try f.file.read(offset: start, count: size, view: view, allowShort: !cached, allocating: allocating) { bytes in
                pending.take()!.data(bytes)
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
                            pending.take()!.data(bytes)
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

    public func write(_ ctx: RequestContext, inode: UInt64, offset: Int, data: UnsafeRawBufferPointer, file: FileInfo, reply: consuming Reply<WriteReply>) {
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
        let ghosts = Set(f.ghostPages(in: (offset >> gmemPageShift)...last))
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

    public func fallocate(_ ctx: RequestContext, inode: UInt64, mode: Int32, offset: Int, length: Int, file: FileInfo, reply: consuming Reply<EmptyReply>) {
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
    public func fsync(_ ctx: RequestContext, inode: UInt64, file: FileInfo, reply: consuming Reply<EmptyReply>) {
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
    public func flush(_ ctx: RequestContext, inode: UInt64, file: FileInfo, reply: consuming Reply<EmptyReply>) {
        guard let n = node(inode) else { return reply.error(.notFound("inode \(inode)")) }
        guard case .host(let f) = n, let error = f.writebackError.takeAtClose(options.fidelity) else { return reply.complete(nil) }
        reply.error(error)
    }

    public func lseek(_ ctx: RequestContext, inode: UInt64, offset: Int, whence: Int32, file: FileInfo, reply: consuming Reply<LseekReply>) {
        guard let n = node(inode) else { return reply.error(.notFound("inode \(inode)")) }
        guard let f = n.fileNode else { return reply.error(.isDirectory("inode \(inode)")) }
        do throws(GmemError) {
            let request = try SeekRequest(offset: offset, whence: whence)
            reply.offset(Int(try f.file.seek(offset: request.offset, whence: request.whence)))
        } catch {
            reply.error(error)
        }
    }

    public func unlink(_ ctx: RequestContext, parent: UInt64, name: String, reply: consuming Reply<EmptyReply>) {
        guard parent == FixedInode.root else { return reply.error(.notPermitted("files exist only in the mount root")) }
        guard let f = namespace.withLock({ $0.remove(name) }) else { return reply.error(.notFound("file '\(name)'")) }
        let gone = f.lifetime.withLock { l -> Bool in
            l.unlinked = true
            return l.openHandles == 0
        }
        if gone { namespace.withLock { $0.drop(f) } }
        trace(.remove, f, 0, f.file.size, .ok, ctx)
        logger.info("removed \(name)\(gone ? "" : " (memory freed at last close)")")
        reply.complete(nil)
    }

    // Files come only from user.gmem.create: every other way of making a name, or changing one,
    // is refused (CREATE, i.e. open with O_CREAT of a new name, included).
    public func create(_ ctx: RequestContext, parent: UInt64, name: String, mode: mode_t, flags: Int32, reply: consuming Reply<CreateReply>) { reply.error(Self.namesAreFixed) }
    public func mknod(_ ctx: RequestContext, parent: UInt64, name: String, mode: mode_t, reply: consuming Reply<EntryReply>) { reply.error(Self.namesAreFixed) }
    public func mkdir(_ ctx: RequestContext, parent: UInt64, name: String, mode: mode_t, reply: consuming Reply<EntryReply>) { reply.error(Self.namesAreFixed) }
    public func symlink(_ ctx: RequestContext, target: String, parent: UInt64, name: String, reply: consuming Reply<EntryReply>) { reply.error(Self.namesAreFixed) }
    public func link(_ ctx: RequestContext, inode: UInt64, newParent: UInt64, newName: String, reply: consuming Reply<EntryReply>) { reply.error(Self.namesAreFixed) }
    public func rename(_ ctx: RequestContext, parent: UInt64, name: String, newParent: UInt64, newName: String, reply: consuming Reply<EmptyReply>) { reply.error(Self.namesAreFixed) }
    public func rmdir(_ ctx: RequestContext, parent: UInt64, name: String, reply: consuming Reply<EmptyReply>) { reply.error(Self.namesAreFixed) }

    /// The inode count `statfs` reports (files are limited by memory, not by inodes).
    static let inodeCapacity = 1 << 32

    public func statfs(_ ctx: RequestContext, inode: UInt64, reply: consuming Reply<StatfsReply>) {
        let files = namespace.withLock { ns in Array(ns.byInode.values) }
        let total = budget.limitPages ?? files.reduce(0) { $0 + $1.file.pageCount }
        let used = budget.usedPages
        var st = statvfs()
        st.f_bsize = UInt(pageSize); st.f_frsize = UInt(pageSize)
        st.f_blocks = UInt(total); st.f_bfree = UInt(total - min(total, used)); st.f_bavail = st.f_bfree
        // Names are not a finite resource (only memory is): report plenty of free inodes, so
        // that `df -i` does not show the mount full.
        st.f_files = UInt(Self.inodeCapacity); st.f_ffree = UInt(Self.inodeCapacity - min(Self.inodeCapacity, files.count))
        st.f_favail = st.f_ffree; st.f_namemax = 255
        reply.statfs(st)
    }
}

extension GmemFilesystem {
    static let namesAreFixed = GmemError.notPermitted("files are made only by user.gmem.create")
}

extension Node {
    var isRoot: Bool { if case .root = self { true } else { false } }

    /// What the kernel rules see (GmemCore's ``NodeKind``).
    var kind: NodeKind {
        switch self {
        case .root: .root
        case .guestDirectory, .mapsDirectory: .guestDirectory
        case .host: .hostFile
        case .guest, .trace, .map: .guestFile
        }
    }
}

extension Reply {
    /// Answers with `error`'s errno: ``GmemError`` is the one errno mapping, so the bridge
    /// answers every refusal through it.
    consuming func error(_ error: GmemError) { self.error(error.errno) }
}
