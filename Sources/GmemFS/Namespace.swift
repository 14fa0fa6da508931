import Glibc
import FuseKit
import GmemCore
import Synchronization

/// Owner, mode and times of a node (what setattr may change).
struct Metadata: Sendable {
    var mode: mode_t
    var uid: uid_t
    var gid: gid_t
    var atime: timespec
    var mtime: timespec
    var ctime: timespec

    init(mode: mode_t, uid: uid_t, gid: gid_t) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        self.mode = mode; self.uid = uid; self.gid = gid
        atime = now; mtime = now; ctime = now
    }
}

/// A named gmem file in the mount: the core file plus its two inodes and their metadata.
final class FileNode: Sendable {
    let name: String
    let file: GuestMemFile
    let hostInode: InodeNumber
    var guestInode: InodeNumber { hostInode.guestView }
    /// Host metadata; the guest view is always 0600, owned by the daemon's user.
    let metadata: Mutex<Metadata>
    /// Open handles on either view, and whether the name is gone (memory is freed when both allow).
    let lifetime = Mutex<(openHandles: Int, unlinked: Bool)>((0, false))
    /// A failed writeback of mapped pages not yet reported by `fsync` or close.
    let writebackError = WritebackError()
    /// Ghosts: private pages whose READ a populate loop got answered with zeros, by page, with
    /// the number of answers not yet dropped (``PopulateGuard``). A writeback into one is
    /// discarded; a conversion to shared drops them first.
    let ghosts = Mutex<[UInt64: Int]>([:])

    /// The ghost pages in `pages`.
    func ghostPages(in pages: PageRange) -> [UInt64] {
        ghosts.withLock { map in map.isEmpty ? [] : map.keys.filter { pages.contains($0) } }
    }
    /// Ranges each view wrote back (writepage WRITEs) since its last fsync (``WrittenBack``).
    let writtenBack = Mutex(WrittenBackByView())

    init(name: String, file: GuestMemFile, hostInode: InodeNumber, metadata: Metadata) {
        self.name = name; self.file = file; self.hostInode = hostInode
        self.metadata = Mutex(metadata)
    }

    func touchModified() {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        metadata.withLock { $0.mtime = now; $0.ctime = now }
    }
}

/// What an inode number refers to.
enum Node: Sendable {
    case root
    case guestDirectory
    case host(FileNode)
    case guest(FileNode)
    /// `MOUNTPOINT/.trace`, `MOUNTPOINT/.maps` and `MOUNTPOINT/.maps/NAME` (TraceFile, MapsDirectory).
    case trace
    case mapsDirectory
    case map(FileNode)

    /// The file behind a file inode (host or guest view); nil for a directory or a special file.
    var fileNode: FileNode? {
        switch self {
        case .host(let f), .guest(let f): f
        case .root, .guestDirectory, .trace, .mapsDirectory, .map: nil
        }
    }

    /// The node's path under the mount, for log lines.
    var displayName: String {
        switch self {
        case .root: "/"
        case .guestDirectory: "/.guest"
        case .host(let f): "/" + f.name
        case .guest(let f): "/.guest/" + f.name
        case .trace: "/.trace"
        case .mapsDirectory: "/.maps"
        case .map(let f): "/.maps/" + f.name
        }
    }
}

/// The directory of files and the inode table. Guarded by one mutex, held only for lookups
/// and updates of these tables (never across I/O).
///
/// Names are compared as bytes, as the kernel does: Swift's `String` equality is Unicode
/// canonical equivalence, under which `é` and `e` + U+0301 are one name.
struct Namespace: ~Copyable {
    private var byName: [[UInt8]: FileNode] = [:]
    private(set) var order: [FileNode] = []  // creation order, for readdir
    var byInode: [InodeNumber: FileNode] = [:]    // by host number; includes unlinked files still open
    var nextInode = InodeNumber.firstFile

    var count: Int { byName.count }

    subscript(name: String) -> FileNode? { byName[Array(name.utf8)] }

    /// Adds the file `make` builds for the next free inode pair; EEXIST for a taken name.
    /// `make` runs with the namespace lock held: it must not take the namespace again.
    mutating func insert(_ name: String, make: (InodeNumber) throws(GmemError) -> FileNode) throws(GmemError) -> FileNode {
        let key = Array(name.utf8)
        guard byName[key] == nil else { throw .exists(name) }
        let node = try make(nextInode)
        nextInode = nextInode.nextFile
        byName[key] = node
        order.append(node)
        byInode[node.hostInode] = node
        return node
    }

    mutating func remove(_ name: String) -> FileNode? {
        guard let node = byName.removeValue(forKey: Array(name.utf8)) else { return nil }
        order.removeAll { $0 === node }
        return node
    }

    /// Removes the file's inodes once its name is gone and no handle is open; its memory goes
    /// with the last reference.
    mutating func drop(_ node: FileNode) { byInode[node.hostInode] = nil }
}
