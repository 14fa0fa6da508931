import CFuse
import Glibc
import SystemPackage

/// Kinds of reply, one per shape of answer a FUSE operation can give (libfuse's "Valid replies").
public enum EntryReply {}
public enum AttrReply {}
public enum OpenReply {}
public enum DataReply {}
public enum WriteReply {}
public enum EmptyReply {}
public enum XattrReply {}
public enum LseekReply {}
public enum IoctlReply {}
public enum StatfsReply {}

/// The one answer to one FUSE request.
///
/// A reply must be used exactly once: every answering method is `consuming`. A reply dropped
/// without an answer answers `EIO` from its `deinit` (fuser's `Drop` safety net), so a forgotten
/// path can never hang the caller in the kernel.
public struct Reply<Kind>: ~Copyable {
    let req: fuse_req_t
    let fi: UnsafeMutablePointer<fuse_file_info>?

    init(_ req: fuse_req_t, _ fi: UnsafeMutablePointer<fuse_file_info>? = nil) { self.req = req; self.fi = fi }

    deinit { fuse_reply_err(req, EIO) }

    /// Answers with an error. `0` is success for kinds whose success carries no data.
    public consuming func error(_ errno: Errno) {
        fuse_reply_err(req, errno.rawValue)
        discard self
    }

    /// Answers with an error, or success when `result` is nil (operations with empty replies).
    public consuming func complete(_ result: Errno?) {
        fuse_reply_err(req, result?.rawValue ?? 0)
        discard self
    }
}

/// What a lookup or create answers: the inode, its attributes and how long the kernel may cache them.
public struct EntryParameters: Sendable {
    public var inode: UInt64
    public var attributes: stat
    public var attributeTimeout: Double
    public var entryTimeout: Double
    public init(inode: UInt64, attributes: stat, attributeTimeout: Double, entryTimeout: Double) {
        self.inode = inode; self.attributes = attributes
        self.attributeTimeout = attributeTimeout; self.entryTimeout = entryTimeout
    }
}

extension Reply where Kind == EntryReply {
    public consuming func entry(_ e: EntryParameters) {
        var p = fuse_entry_param()
        p.ino = e.inode
        p.generation = 1
        p.attr = e.attributes
        p.attr_timeout = e.attributeTimeout
        p.entry_timeout = e.entryTimeout
        fuse_reply_entry(req, &p)
        discard self
    }
}

extension Reply where Kind == AttrReply {
    public consuming func attr(_ st: stat, timeout: Double) {
        var st = st
        fuse_reply_attr(req, &st, timeout)
        discard self
    }
}

/// How the kernel should treat an open file (the parts of `fuse_file_info` an open may set).
public struct OpenOptions: Sendable {
    public var handle: UInt64 = 0
    /// FOPEN_DIRECT_IO: no page cache; every read and write reaches the daemon; MAP_SHARED fails with ENODEV.
    public var directIO = false
    /// FOPEN_KEEP_CACHE: do not drop the inode's page cache on this open.
    public var keepCache = false
    /// FOPEN_NONSEEKABLE: the kernel refuses `lseek`, `pread` and `pwrite` on this open file
    /// (ESPIPE) without asking the daemon.
    public var nonseekable = false
    public init(handle: UInt64 = 0, directIO: Bool = false, keepCache: Bool = false, nonseekable: Bool = false) {
        self.handle = handle; self.directIO = directIO; self.keepCache = keepCache; self.nonseekable = nonseekable
    }
}

extension Reply where Kind == OpenReply {
    public consuming func open(_ o: OpenOptions) {
        let fi = self.fi!
        fi.pointee.fh = o.handle
        cfuse_fi_set_direct_io(fi, o.directIO ? 1 : 0)
        cfuse_fi_set_keep_cache(fi, o.keepCache ? 1 : 0)
        cfuse_fi_set_nonseekable(fi, o.nonseekable ? 1 : 0)
        fuse_reply_open(req, fi)
        discard self
    }
}

extension Reply where Kind == DataReply {
    /// Answers with the bytes in `segments`, gathered by `writev` straight from their memory.
    /// The memory only has to stay valid until this call returns.
    public consuming func data(_ segments: UnsafeBufferPointer<iovec>) {
        fuse_reply_iov(req, segments.baseAddress, Int32(segments.count))
        discard self
    }
}

extension Reply where Kind == WriteReply {
    public consuming func written(_ count: Int) {
        fuse_reply_write(req, count)
        discard self
    }
}

extension Reply where Kind == XattrReply {
    /// Answers a size probe (`size == 0` in the request) with the value's length.
    public consuming func size(_ count: Int) {
        fuse_reply_xattr(req, count)
        discard self
    }

    /// Answers with the value. The caller has checked it fits the requested size (else ERANGE).
    public consuming func value(_ bytes: [UInt8]) {
        let req = self.req
        discard self
        bytes.withUnsafeBytes { _ = fuse_reply_buf(req, $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count) }
    }
}

extension Reply where Kind == LseekReply {
    public consuming func offset(_ off: Int) {
        fuse_reply_lseek(req, off)
        discard self
    }
}

extension Reply where Kind == IoctlReply {
    /// Answers with the ioctl's return value and the bytes copied back to the caller's argument
    /// (at most the request's `outputSize`; more makes the caller see EIO).
    public consuming func result(_ result: Int32, output: UnsafeRawBufferPointer) {
        fuse_reply_ioctl(req, result, output.baseAddress, output.count)
        discard self
    }
}

extension Reply where Kind == StatfsReply {
    public consuming func statfs(_ st: statvfs) {
        var st = st
        fuse_reply_statfs(req, &st)
        discard self
    }
}

/// A directory listing being built for one readdir reply.
public struct DirectoryBuffer: ~Copyable {
    let req: fuse_req_t
    let capacity: Int
    var bytes: [CChar]

    init(req: fuse_req_t, capacity: Int) {
        self.req = req; self.capacity = capacity
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// Adds an entry; returns false (adding nothing) when it would not fit.
    /// `nextOffset` is the offset the kernel passes back to continue after this entry.
    public mutating func add(name: String, inode: UInt64, mode: mode_t, nextOffset: Int) -> Bool {
        var st = stat()
        st.st_ino = UInt(inode)
        st.st_mode = mode
        let need = fuse_add_direntry(req, nil, 0, name, &st, 0)
        if bytes.count + need > capacity { return false }
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: need))
        bytes.withUnsafeMutableBufferPointer { buf in
            _ = fuse_add_direntry(req, buf.baseAddress! + start, need, name, &st, nextOffset)
        }
        return true
    }
}

public enum DirectoryReply {}

extension Reply where Kind == DirectoryReply {
    public consuming func entries(_ buffer: consuming DirectoryBuffer) {
        _ = buffer.bytes.withUnsafeBufferPointer { fuse_reply_buf(req, $0.baseAddress, $0.count) }
        discard self
    }

    /// A buffer to fill with entries for this reply.
    public func makeBuffer(capacity: Int) -> DirectoryBuffer { DirectoryBuffer(req: req, capacity: capacity) }
}
