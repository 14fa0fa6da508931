import CFuse
import Glibc
import SystemPackage

/// Who is asking: the credentials of the process behind a request (from `fuse_req_ctx`).
/// For writes of dirty mmap pages (``FileInfo/isWritepage``) these are not meaningful.
public struct RequestContext: Sendable {
    public let uid: uid_t
    public let gid: gid_t
    public let pid: pid_t
    public init(uid: uid_t, gid: gid_t, pid: pid_t) { self.uid = uid; self.gid = gid; self.pid = pid }
}

/// The parts of `struct fuse_file_info` a handler reads.
public struct FileInfo: Sendable {
    /// The handle this daemon returned from open (0 when the request has no open file).
    public let handle: FuseFileHandle
    /// The `open(2)` flags (open and create only).
    public let flags: Int32
    /// True for a WRITE that launders a dirty page-cache page (mmap writeback), not a write(2).
    public let isWritepage: Bool

    public init(handle: FuseFileHandle, flags: Int32, isWritepage: Bool = false) {
        self.handle = handle; self.flags = flags; self.isWritepage = isWritepage
    }

    init(_ fi: UnsafeMutablePointer<fuse_file_info>?) {
        handle = FuseFileHandle(fi?.pointee.fh ?? 0)
        flags = fi?.pointee.flags ?? 0
        isWritepage = fi.map { cfuse_fi_writepage($0) != 0 } ?? false
    }
}

/// Attribute changes requested by setattr (`to_set` bits decoded).
public struct SetAttributes: Sendable {
    public init() {}
    public var mode: mode_t?
    public var uid: uid_t?
    public var gid: gid_t?
    public var size: off_t?
    public var accessTime: timespec?      // nil: unchanged
    public var modificationTime: timespec?
}

/// A file system served through the libfuse low-level API: one method per FUSE operation,
/// named after it. Each method receives the typed reply last and must consume it exactly once.
///
/// Every method but `open`, `read`, `write` and `readdir` has a default (below) that answers
/// ENOSYS, or what libfuse's own default is, so a file system implements only what it supports
/// beyond those four. Methods are called concurrently from the multi-threaded session loop.
///
/// Names are `String`s: a lookup, unlink or rmdir of a name that is not UTF-8 is answered
/// ENOENT without calling the file system.
public protocol LowLevelFilesystem: AnyObject, Sendable {
    /// Called once the session is up, before any request is served.
    func initialize()
    /// Called once when the request loop has ended (a signal, or the mount went away), before
    /// the file system is unmounted and the connection to the kernel closed: replies the file
    /// system still holds (parked READs) can be answered here; once the connection closes,
    /// the kernel fails them with ECONNABORTED.
    func sessionEnding()
    func lookup(_ ctx: RequestContext, parent: InodeNumber, name: String, reply: consuming Reply<EntryReply>)
    func forget(inode: InodeNumber, lookups: UInt64)
    func getattr(_ ctx: RequestContext, inode: InodeNumber, reply: consuming Reply<AttrReply>)
    func setattr(_ ctx: RequestContext, inode: InodeNumber, _ changes: SetAttributes, file: FileInfo?, reply: consuming Reply<AttrReply>)
    func mknod(_ ctx: RequestContext, parent: InodeNumber, name: String, mode: mode_t, reply: consuming Reply<EntryReply>)
    func mkdir(_ ctx: RequestContext, parent: InodeNumber, name: String, mode: mode_t, reply: consuming Reply<EntryReply>)
    func unlink(_ ctx: RequestContext, parent: InodeNumber, name: String, reply: consuming Reply<EmptyReply>)
    func rmdir(_ ctx: RequestContext, parent: InodeNumber, name: String, reply: consuming Reply<EmptyReply>)
    func symlink(_ ctx: RequestContext, target: String, parent: InodeNumber, name: String, reply: consuming Reply<EntryReply>)
    func rename(_ ctx: RequestContext, parent: InodeNumber, name: String, newParent: InodeNumber, newName: String, reply: consuming Reply<EmptyReply>)
    func link(_ ctx: RequestContext, inode: InodeNumber, newParent: InodeNumber, newName: String, reply: consuming Reply<EntryReply>)
    /// CREATE (`open(2)` with `O_CREAT` of a name that does not exist): success is
    /// `reply.created(entry, options)` (`fuse_reply_create`), never a bare entry.
    func create(_ ctx: RequestContext, parent: InodeNumber, name: String, mode: mode_t, flags: Int32, reply: consuming Reply<CreateReply>)
    func open(_ ctx: RequestContext, inode: InodeNumber, flags: Int32, reply: consuming Reply<OpenReply>)
    func read(_ ctx: RequestContext, inode: InodeNumber, offset: Int, size: Int, file: FileInfo, reply: consuming Reply<DataReply>)
    func write(_ ctx: RequestContext, inode: InodeNumber, offset: Int, data: UnsafeRawBufferPointer, file: FileInfo, reply: consuming Reply<WriteReply>)
    func flush(_ ctx: RequestContext, inode: InodeNumber, file: FileInfo, reply: consuming Reply<EmptyReply>)
    func release(inode: InodeNumber, file: FileInfo)
    func fsync(_ ctx: RequestContext, inode: InodeNumber, file: FileInfo, reply: consuming Reply<EmptyReply>)
    func readdir(_ ctx: RequestContext, inode: InodeNumber, offset: Int, size: Int, reply: consuming Reply<DirectoryReply>)
    func statfs(_ ctx: RequestContext, inode: InodeNumber, reply: consuming Reply<StatfsReply>)
    func setxattr(_ ctx: RequestContext, inode: InodeNumber, name: String, value: UnsafeRawBufferPointer, flags: Int32, reply: consuming Reply<EmptyReply>)
    /// `size == 0` asks for the value's length (`reply.size`); a value longer than `size` is ERANGE.
    func getxattr(_ ctx: RequestContext, inode: InodeNumber, name: String, size: Int, reply: consuming Reply<XattrReply>)
    /// Same size protocol as getxattr; the value is NUL-terminated names.
    func listxattr(_ ctx: RequestContext, inode: InodeNumber, size: Int, reply: consuming Reply<XattrReply>)
    func removexattr(_ ctx: RequestContext, inode: InodeNumber, name: String, reply: consuming Reply<EmptyReply>)
    func fallocate(_ ctx: RequestContext, inode: InodeNumber, mode: Int32, offset: Int, length: Int, file: FileInfo, reply: consuming Reply<EmptyReply>)
    /// `whence` is SEEK_DATA or SEEK_HOLE (the kernel handles the others itself).
    func lseek(_ ctx: RequestContext, inode: InodeNumber, offset: Int, whence: Int32, file: FileInfo, reply: consuming Reply<LseekReply>)
    /// Restricted ioctl on a regular file: `input` is the copied-in argument (`_IOC_SIZE` bytes for
    /// `_IOW`/`_IOWR`), `outputSize` how many bytes may be copied back.
    func ioctl(_ ctx: RequestContext, inode: InodeNumber, command: UInt32, input: UnsafeRawBufferPointer, outputSize: Int, file: FileInfo, reply: consuming Reply<IoctlReply>)
}

extension LowLevelFilesystem {
    public func initialize() {}
    public func sessionEnding() {}
    public func lookup(_ ctx: RequestContext, parent: InodeNumber, name: String, reply: consuming Reply<EntryReply>) { reply.error(.noFunction) }
    public func forget(inode: InodeNumber, lookups: UInt64) {}
    public func getattr(_ ctx: RequestContext, inode: InodeNumber, reply: consuming Reply<AttrReply>) { reply.error(.noFunction) }
    public func setattr(_ ctx: RequestContext, inode: InodeNumber, _ changes: SetAttributes, file: FileInfo?, reply: consuming Reply<AttrReply>) { reply.error(.noFunction) }
    public func mknod(_ ctx: RequestContext, parent: InodeNumber, name: String, mode: mode_t, reply: consuming Reply<EntryReply>) { reply.error(.noFunction) }
    public func mkdir(_ ctx: RequestContext, parent: InodeNumber, name: String, mode: mode_t, reply: consuming Reply<EntryReply>) { reply.error(.noFunction) }
    public func unlink(_ ctx: RequestContext, parent: InodeNumber, name: String, reply: consuming Reply<EmptyReply>) { reply.error(.noFunction) }
    public func rmdir(_ ctx: RequestContext, parent: InodeNumber, name: String, reply: consuming Reply<EmptyReply>) { reply.error(.noFunction) }
    public func symlink(_ ctx: RequestContext, target: String, parent: InodeNumber, name: String, reply: consuming Reply<EntryReply>) { reply.error(.noFunction) }
    public func rename(_ ctx: RequestContext, parent: InodeNumber, name: String, newParent: InodeNumber, newName: String, reply: consuming Reply<EmptyReply>) { reply.error(.noFunction) }
    public func link(_ ctx: RequestContext, inode: InodeNumber, newParent: InodeNumber, newName: String, reply: consuming Reply<EntryReply>) { reply.error(.noFunction) }
    public func create(_ ctx: RequestContext, parent: InodeNumber, name: String, mode: mode_t, flags: Int32, reply: consuming Reply<CreateReply>) { reply.error(.noFunction) }
    public func flush(_ ctx: RequestContext, inode: InodeNumber, file: FileInfo, reply: consuming Reply<EmptyReply>) { reply.complete(nil) }
    public func release(inode: InodeNumber, file: FileInfo) {}
    public func fsync(_ ctx: RequestContext, inode: InodeNumber, file: FileInfo, reply: consuming Reply<EmptyReply>) { reply.complete(nil) }
    public func statfs(_ ctx: RequestContext, inode: InodeNumber, reply: consuming Reply<StatfsReply>) { reply.error(.noFunction) }
    public func setxattr(_ ctx: RequestContext, inode: InodeNumber, name: String, value: UnsafeRawBufferPointer, flags: Int32, reply: consuming Reply<EmptyReply>) { reply.error(.notSupported) }
    public func getxattr(_ ctx: RequestContext, inode: InodeNumber, name: String, size: Int, reply: consuming Reply<XattrReply>) { reply.error(.noData) }
    public func listxattr(_ ctx: RequestContext, inode: InodeNumber, size: Int, reply: consuming Reply<XattrReply>) { reply.size(0) }
    public func removexattr(_ ctx: RequestContext, inode: InodeNumber, name: String, reply: consuming Reply<EmptyReply>) { reply.error(.notSupported) }
    public func fallocate(_ ctx: RequestContext, inode: InodeNumber, mode: Int32, offset: Int, length: Int, file: FileInfo, reply: consuming Reply<EmptyReply>) { reply.error(.notSupported) }
    public func lseek(_ ctx: RequestContext, inode: InodeNumber, offset: Int, whence: Int32, file: FileInfo, reply: consuming Reply<LseekReply>) { reply.error(.noFunction) }
    public func ioctl(_ ctx: RequestContext, inode: InodeNumber, command: UInt32, input: UnsafeRawBufferPointer, outputSize: Int, file: FileInfo, reply: consuming Reply<IoctlReply>) { reply.error(.inappropriateIOCTLForDevice) }
}
