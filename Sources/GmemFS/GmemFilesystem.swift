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
    let traceFile: TraceFile
    let maps = MapsDirectory()
    /// Numbers open files: the handle is ``GmemFileHandle/init(access:serial:)`` of it, so that page
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
        traceFile = TraceFile(events: events)
        rootMetadata = Mutex(Metadata(mode: S_IFDIR | 0o755, uid: getuid(), gid: getgid()))
    }

    /// The session is ending: parked `.trace` READs end as at end-of-file instead of failing
    /// with ECONNABORTED once the connection closes.
    public func sessionEnding() {
        traceFile.end()
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

    func node(_ inode: InodeNumber) -> Node? {
        switch inode.target {
        case .root: return .root
        case .guestDirectory: return options.guestView ? .guestDirectory : nil
        case .trace: return .trace
        case .mapsDirectory: return .mapsDirectory
        case .map(let host): return namespace.withLock { ns in ns.byInode[host].map { .map($0) } }
        case .host(let host): return namespace.withLock { ns in ns.byInode[host].map { .host($0) } }
        case .guest(let host): return namespace.withLock { ns in ns.byInode[host].map { .guest($0) } }
        }
    }

    /// The inode count `statfs` reports (files are limited by memory, not by inodes).
    static let inodeCapacity = 1 << 32

    public func statfs(_ ctx: RequestContext, inode: InodeNumber, reply: consuming Reply<StatfsReply>) {
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

extension Node {
    var isRoot: Bool { if case .root = self { true } else { false } }

    /// What the kernel rules see (GmemCore's ``NodeKind``).
    var kind: NodeKind {
        switch self {
        case .root: .root
        case .guestDirectory: .guestDirectory
        case .mapsDirectory: .specialDirectory
        case .host: .hostFile
        case .guest: .guestFile
        case .trace, .map: .specialFile
        }
    }
}

extension Reply {
    /// Answers with `error`'s errno: ``GmemError`` is the one errno mapping, so the bridge
    /// answers every refusal through it.
    consuming func error(_ error: GmemError) { self.error(error.errno) }
}
