import FuseKit
import Synchronization
import Glibc
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
    /// The absolute path the file system is mounted on (to recognise the requester's file).
    public var mountpoint = "/"
    public init(guestView: Bool = false, maxMemory: UInt64? = nil, fidelity: Fidelity = .tools) {
        self.guestView = guestView; self.maxMemory = maxMemory; self.fidelity = fidelity
    }
}

/// gmemfs served through FuseKit: the mount root plays the VM fd (files are created with the
/// `user.gmem.create` xattr), each file is a ``GuestMemFile``.
///
/// Kernel caching: host files with the `mmap` flag use the page cache and keep it across opens;
/// the daemon drops cached pages itself wherever contents or attributes change behind the
/// kernel's back (conversions to private, guest-view writes and punches), always with no lock
/// held. Files without `mmap` and the guest view are direct_io.
///
/// Metadata caching: names are cached for an hour (a name only goes away through unlink, which
/// the kernel sees; a failed lookup is never cached) and attributes for a second. The kernel
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
    /// Numbers open files (FUSE handles): a handle is `number << 2 | access mode`, so that page
    /// references can belong to one open file description.
    let openCount = Atomic<UInt64>(0)

    public init(options: GmemOptions, notifier: Notifier, logger: Logger) {
        self.options = options
        self.notifier = notifier
        self.logger = logger
        budget = MemoryBudget(limitBytes: options.maxMemory)
        populateGuard = PopulateGuard(logger: logger)
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
            if case .host = node, options.fidelity == .kernel {
                st.st_blocks = 0   // the kernel's guest_memfd inode never counts blocks
            } else {
                st.st_blocks = Int(f.file.allocatedBytes / 512)
            }
        }
        st.st_blksize = Int(pageSize)
        return st
    }

    func entry(_ node: Node, inode: UInt64) -> EntryParameters {
        EntryParameters(inode: inode, attributes: stat(of: node, inode: inode),
                        attributeTimeout: Self.attributeTimeout(node), entryTimeout: Self.entryTimeout)
    }

    static let entryTimeout = 3600.0

    /// Seconds the kernel may cache a node's attributes.
    static func attributeTimeout(_ node: Node) -> Double {
        if case .guest = node { return 0 }
        return 1
    }

    /// Makes the kernel re-read the host inode's attributes (`st_blocks`, times) after the guest
    /// view changed them. Call with no lock held.
    func invalidateHostAttributes(_ f: FileNode) {
        notifier.invalidate(inode: f.hostInode, offset: -1, length: 0)
    }

    /// Drops the host's cached pages of `[offset, offset + length)`. Call with no lock held.
    func invalidateHost(_ f: FileNode, offset: UInt64, length: UInt64) {
        if let e = notifier.invalidate(inode: f.hostInode, offset: Int(offset), length: Int(length)) {
            logger.warning("invalidating \(f.name) [\(offset), +\(length)) failed: \(e)")
        }
    }

    /// Runs a conversion to completion: update the tree (under the file lock), then, with no lock
    /// held, drop the host's cached copies when pages became private. Returns once no process
    /// can read the converted pages' old contents. A refused conversion (references, an armed
    /// fault) throws and changed nothing.
    func convert(_ f: FileNode, _ request: ConversionRequest) throws(GmemError) {
        if try f.file.setAttributes(request) == .becamePrivate {
            invalidateHost(f, offset: request.offset, length: request.size)
        }
        logger.debug("\(f.name): [\(request.offset), +\(request.size)) -> \(request.attributes.name)")
    }

    // MARK: - LowLevelFilesystem

    public func lookup(_ ctx: RequestContext, parent: UInt64, name: String, reply: consuming Reply<EntryReply>) {
        switch (node(parent), name) {
        case (.root?, ".guest") where options.guestView:
            reply.entry(entry(.guestDirectory, inode: FixedInode.guestDirectory))
        case (.root?, _):
            guard let f = namespace.withLock({ $0[name] }) else { return reply.error(.noSuchFileOrDirectory) }
            reply.entry(entry(.host(f), inode: f.hostInode))
        case (.guestDirectory?, _):
            guard let f = namespace.withLock({ $0[name] }) else { return reply.error(.noSuchFileOrDirectory) }
            reply.entry(entry(.guest(f), inode: f.guestInode))
        case (nil, _): reply.error(.noSuchFileOrDirectory)
        default: reply.error(.notDirectory)
        }
    }

    public func getattr(_ ctx: RequestContext, inode: UInt64, reply: consuming Reply<AttrReply>) {
        guard let n = node(inode) else { return reply.error(.noSuchFileOrDirectory) }
        reply.attr(stat(of: n, inode: inode), timeout: Self.attributeTimeout(n))
    }

    public func setattr(_ ctx: RequestContext, inode: UInt64, _ changes: SetAttributes, file: FileInfo?, reply: consuming Reply<AttrReply>) {
        guard let n = node(inode) else { return reply.error(.noSuchFileOrDirectory) }
        // The size of a gmem file is fixed at creation (kvm_gmem_setattr: -EINVAL).
        if changes.size != nil { return reply.error(n.file == nil ? .isDirectory : .invalidArgument) }
        // kvm_gmem_setattr refuses every change; by default gmemfs keeps chmod, chown and touch.
        if case .host = n, options.fidelity == .kernel { return reply.error(.invalidArgument) }
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
        case .guestDirectory, .guest:
            // The guest view's owner and mode are fixed; only its times may be "set" (ignored).
            if changes.mode != nil || changes.uid != nil || changes.gid != nil { return reply.error(.notPermitted) }
        }
        reply.attr(stat(of: n, inode: inode), timeout: Self.attributeTimeout(n))
    }

    /// Offsets are cookies that stay valid while names come and go: 1, 2 and 3 follow `.`, `..`
    /// and `.guest`; a file's is its host inode (creation order, never reused), so removing an
    /// entry already listed cannot make a continued listing skip one that was not.
    public func readdir(_ ctx: RequestContext, inode: UInt64, offset: Int, size: Int, reply: consuming Reply<DirectoryReply>) {
        guard let n = node(inode) else { return reply.error(.noSuchFileOrDirectory) }
        var entries: [(name: String, inode: UInt64, mode: mode_t, cookie: UInt64)] =
            [(".", inode, S_IFDIR, 1), ("..", FixedInode.root, S_IFDIR, 2)]
        let files = namespace.withLock { $0.order }
        switch n {
        case .root:
            if options.guestView { entries.append((".guest", FixedInode.guestDirectory, S_IFDIR, 3)) }
            entries += files.map { ($0.name, $0.hostInode, S_IFREG, $0.hostInode) }
        case .guestDirectory:
            entries += files.map { ($0.name, $0.guestInode, S_IFREG, $0.hostInode) }
        default: return reply.error(.notDirectory)
        }
        var buffer = reply.makeBuffer(capacity: size)
        for e in entries where e.cookie > UInt64(max(0, offset)) {
            guard buffer.add(name: e.name, inode: e.inode, mode: e.mode, nextOffset: Int(e.cookie)) else { break }
        }
        reply.entries(buffer)
    }

    public func open(_ ctx: RequestContext, inode: UInt64, flags: Int32, reply: consuming Reply<OpenReply>) {
        guard let n = node(inode) else { return reply.error(.noSuchFileOrDirectory) }
        guard let f = n.file else { return reply.error(.isDirectory) }
        // The size never changes, so O_TRUNC cannot be honoured (libfuse delivers it here).
        if flags & O_TRUNC != 0 { return reply.error(.invalidArgument) }
        // An unlink may have freed the file between node() and here (the kernel can send OPEN
        // for a name removed after its lookup): it is gone, not openable.
        let live = f.lifetime.withLock { l -> Bool in
            if l.unlinked && l.openHandles == 0 { return false }
            l.openHandles += 1
            return true
        }
        guard live else { return reply.error(.noSuchFileOrDirectory) }
        let cached: Bool
        if case .host = n { cached = f.file.flags.contains(.mmap) } else { cached = false }
        // Kernel fidelity: a guest_memfd has no llseek, so lseek, pread and pwrite are ESPIPE.
        var nonseekable = false
        if case .host = n { nonseekable = options.fidelity == .kernel }
        // The handle remembers the access mode (for the ioctl's write check) and is unique: page
        // references belong to it.
        let handle = openCount.add(1, ordering: .relaxed).newValue << 2 | UInt64(UInt32(bitPattern: flags & O_ACCMODE))
        reply.open(OpenOptions(handle: handle, directIO: !cached, keepCache: cached,
                               nonseekable: nonseekable))
    }

    public func release(inode: UInt64, file: FileInfo) {
        guard let f = node(inode)?.file else { return }
        releaseReferences(f, handle: file.handle)
        let gone = f.lifetime.withLock { l -> Bool in
            l.openHandles -= 1
            return l.unlinked && l.openHandles == 0
        }
        if gone {
            namespace.withLock { $0.forget(f) }
            logger.info("freed \(f.name)")
        }
    }

    public func read(_ ctx: RequestContext, inode: UInt64, offset: Int, size: Int, file: FileInfo, reply: consuming Reply<DataReply>) {
        guard let n = node(inode) else { return reply.error(.noSuchFileOrDirectory) }
        guard let f = n.file else { return reply.error(.isDirectory) }
        guard offset >= 0 else { return reply.error(.invalidArgument) }
        var view = GuestMemFile.View.guest
        var cached = false
        if case .host = n { view = .host; cached = f.file.flags.contains(.mmap) && file.flags & LinuxConstants.openDirect == 0 }
        // Kernel fidelity: a guest_memfd has no read; only page faults (and the kernel's own
        // page-ins) may fill the host's pages. Uncached files are only read by read(2).
        if view == .host, options.fidelity == .kernel,
           !cached || Requester(ctx.pid).isReading(inode: f.hostInode, under: options.mountpoint) {
            return reply.error(.invalidArgument)
        }
        // Guest view of an mmap file: bytes the host stored through a shared mapping may still be
        // dirty in the host's page cache. Write them back first (the invalidation launders dirty
        // pages), so the guest sees what the host wrote, as with the kernel's single shared page.
        if view == .guest, f.file.flags.contains(.mmap), f.file.hasSharedPage(offset: UInt64(offset), count: size) {
            invalidateHost(f, offset: UInt64(offset), length: UInt64(size))
        }
        // A short reply is fine without the page cache; with it, the kernel would take a short
        // read for EOF and shrink the file (fuse-facts §1), so those get EACCES instead.
        var pending: Reply<DataReply>? = consume reply
        do throws(GmemError) {
            try f.file.read(offset: UInt64(offset), count: size, view: view, allowShort: !cached) { bytes in
                var iov = iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count)
                withUnsafePointer(to: &iov) { pending.take()!.data(UnsafeBufferPointer(start: $0, count: 1)) }
            }
        } catch {
            // Only the page cache faults through READ; a populate loop there never ends by itself.
            // The kill goes first: the task cannot send another READ before it lands.
            if cached, case .privatePage = error {
                populateGuard.refused(tid: ctx.pid, file: f, offset: offset, size: size)?.send()
            }
            pending.take()?.error(error.errno)
        }
    }

    public func write(_ ctx: RequestContext, inode: UInt64, offset: Int, data: UnsafeRawBufferPointer, file: FileInfo, reply: consuming Reply<WriteReply>) {
        guard let n = node(inode) else { return reply.error(.noSuchFileOrDirectory) }
        guard let f = n.file else { return reply.error(.isDirectory) }
        guard offset >= 0 else { return reply.error(.invalidArgument) }
        do throws(GmemError) {
            if case .host = n {
                // Kernel fidelity: a guest_memfd has no write; dirty mapped pages still write back.
                if options.fidelity == .kernel && !file.isWritepage { return reply.error(.invalidArgument) }
                let written = try f.file.write(offset: UInt64(offset), data, view: .host, writepage: file.isWritepage)
                f.touchModified()
                return reply.written(written)
            }
            // Guest view: the host may cache shared pages of this range. Flush the host's dirty
            // copies first (so that they cannot be written back over this write), write, then
            // drop whatever the host re-read in between.
            let sharedTouched = f.file.hasSharedPage(offset: UInt64(offset), count: data.count)
            if sharedTouched { invalidateHost(f, offset: UInt64(offset), length: UInt64(data.count)) }
            let written = try f.file.write(offset: UInt64(offset), data, view: .guest)
            // (A data invalidation also refreshes the host's attributes: st_blocks may have grown.)
            if sharedTouched {
                invalidateHost(f, offset: UInt64(offset), length: UInt64(written))
            } else {
                invalidateHostAttributes(f)
            }
            f.touchModified()
            reply.written(written)
        } catch {
            reply.error(error.errno)
        }
    }

    public func fallocate(_ ctx: RequestContext, inode: UInt64, mode: Int32, offset: Int, length: Int, file: FileInfo, reply: consuming Reply<EmptyReply>) {
        guard let n = node(inode) else { return reply.error(.noSuchFileOrDirectory) }
        guard let f = n.file else { return reply.error(.isDirectory) }
        // kvm_gmem_fallocate: only KEEP_SIZE, optionally with PUNCH_HOLE.
        guard mode & ~(LinuxConstants.fallocKeepSize | LinuxConstants.fallocPunchHole) == 0, mode & LinuxConstants.fallocKeepSize != 0 else {
            return reply.error(.notSupported)
        }
        guard offset >= 0, length > 0 else { return reply.error(.invalidArgument) }
        do throws(GmemError) {
            if mode & LinuxConstants.fallocPunchHole != 0 {
                try f.file.punchHole(offset: UInt64(offset), length: UInt64(length))
                // The kernel drops the host's pages itself for a punch on the host file.
                if case .guest = n { invalidateHost(f, offset: UInt64(offset), length: UInt64(length)) }
                f.touchModified()
            } else {
                try f.file.allocate(offset: UInt64(offset), length: UInt64(length))
                // st_blocks grew; only attributes are invalidated, so this is safe while the
                // kernel holds the inode for this very fallocate.
                invalidateHostAttributes(f)
            }
            reply.complete(nil)
        } catch {
            reply.error(error.errno)
        }
    }

    /// The kernel's guest_memfd has no fsync (EINVAL, also for `msync(MS_SYNC)`); by default
    /// gmemfs answers success: its memory has no backing store to flush.
    public func fsync(_ ctx: RequestContext, inode: UInt64, file: FileInfo, reply: consuming Reply<EmptyReply>) {
        guard let n = node(inode) else { return reply.error(.noSuchFileOrDirectory) }
        if case .host = n, options.fidelity == .kernel { return reply.error(.invalidArgument) }
        reply.complete(nil)
    }

    public func lseek(_ ctx: RequestContext, inode: UInt64, offset: Int, whence: Int32, file: FileInfo, reply: consuming Reply<LseekReply>) {
        guard let n = node(inode) else { return reply.error(.noSuchFileOrDirectory) }
        guard let f = n.file else { return reply.error(.isDirectory) }
        guard whence == LinuxConstants.seekData || whence == LinuxConstants.seekHole else { return reply.error(.invalidArgument) }
        guard offset >= 0 else { return reply.error(.noSuchAddressOrDevice) }
        do throws(GmemError) {
            reply.offset(Int(try f.file.seek(offset: UInt64(offset), data: whence == LinuxConstants.seekData)))
        } catch {
            reply.error(error.errno)
        }
    }

    public func unlink(_ ctx: RequestContext, parent: UInt64, name: String, reply: consuming Reply<EmptyReply>) {
        guard parent == FixedInode.root else { return reply.error(.notPermitted) }
        guard let f = namespace.withLock({ $0.remove(name) }) else { return reply.error(.noSuchFileOrDirectory) }
        let gone = f.lifetime.withLock { l -> Bool in
            l.unlinked = true
            return l.openHandles == 0
        }
        if gone { namespace.withLock { $0.forget(f) } }
        logger.info("removed \(name)\(gone ? "" : " (memory freed at last close)")")
        reply.complete(nil)
    }

    // Files come only from user.gmem.create: every other way of making a name is refused.
    public func create(_ ctx: RequestContext, parent: UInt64, name: String, mode: mode_t, flags: Int32, reply: consuming Reply<EntryReply>) { reply.error(.notPermitted) }
    public func mknod(_ ctx: RequestContext, parent: UInt64, name: String, mode: mode_t, reply: consuming Reply<EntryReply>) { reply.error(.notPermitted) }
    public func mkdir(_ ctx: RequestContext, parent: UInt64, name: String, mode: mode_t, reply: consuming Reply<EntryReply>) { reply.error(.notPermitted) }
    public func symlink(_ ctx: RequestContext, target: String, parent: UInt64, name: String, reply: consuming Reply<EntryReply>) { reply.error(.notPermitted) }
    public func link(_ ctx: RequestContext, inode: UInt64, newParent: UInt64, newName: String, reply: consuming Reply<EntryReply>) { reply.error(.notPermitted) }
    public func rename(_ ctx: RequestContext, parent: UInt64, name: String, newParent: UInt64, newName: String, reply: consuming Reply<EmptyReply>) { reply.error(.notPermitted) }
    public func rmdir(_ ctx: RequestContext, parent: UInt64, name: String, reply: consuming Reply<EmptyReply>) { reply.error(.notPermitted) }

    public func statfs(_ ctx: RequestContext, inode: UInt64, reply: consuming Reply<StatfsReply>) {
        let files = namespace.withLock { ns in Array(ns.byInode.values) }
        let total = budget.limitPages ?? files.reduce(0) { $0 + $1.file.pageCount }
        let used = budget.usedPages
        var st = statvfs()
        st.f_bsize = UInt(pageSize); st.f_frsize = UInt(pageSize)
        st.f_blocks = UInt(total); st.f_bfree = UInt(total - min(total, used)); st.f_bavail = st.f_bfree
        st.f_files = UInt(files.count); st.f_namemax = 255
        reply.statfs(st)
    }
}

extension Node {
    var isRoot: Bool { if case .root = self { true } else { false } }
}
