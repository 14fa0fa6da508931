import CFuse
import Glibc
import Logging
import Synchronization
import SystemPackage

/// Kinds of reply, one per shape of answer a FUSE operation can give (libfuse's "Valid replies").
/// Each kind has its own answering methods, so a reply of the wrong shape does not compile:
/// only an ``EmptyReply`` can succeed without data, only a ``CreateReply`` answers with an
/// entry *and* an open file.
public enum EntryReply {}
public enum CreateReply {}
public enum AttrReply {}
public enum OpenReply {}
public enum DataReply {}
public enum WriteReply {}
public enum EmptyReply {}
public enum XattrReply {}
public enum LseekReply {}
public enum IoctlReply {}
public enum StatfsReply {}
public enum DirectoryReply {}

/// Where a reply goes: the kernel (a libfuse request), or a ``ReplyRecorder`` in tests.
/// (Trivial to destroy, as `discard` requires: the recorder is retained by hand, from the
/// reply's creation until its one answer is recorded.)
enum ReplyTarget {
    case request(fuse_req_t, UnsafeMutablePointer<fuse_file_info>?)
    case recorder(Unmanaged<ReplyRecorder>)
}

/// The one answer to one FUSE request.
///
/// A reply must be used exactly once: every answering method is `consuming`. A reply dropped
/// without an answer answers `EIO` from its `deinit` (fuser's `Drop` safety net) and logs an
/// error, so a forgotten path can never hang the caller in the kernel and is never silent.
public struct Reply<Kind>: ~Copyable {
    let target: ReplyTarget

    init(_ req: fuse_req_t, _ fi: UnsafeMutablePointer<fuse_file_info>? = nil) { target = .request(req, fi) }

    /// A reply that is not sent anywhere but stored in `recorder` (for mount-free tests).
    public init(recordingInto recorder: ReplyRecorder) { target = .recorder(.passRetained(recorder)) }

    deinit {
        FuseKitLog.logger.error("dropped \(Kind.self) without an answer: replying EIO")
        send(.dropped) { req in fuse_reply_err(req, EIO) }
    }

    /// Sends through libfuse (`kernel`) or records `answer`: the only place a reply leaves.
    private func send(_ answer: @autoclosure () -> RecordedReply, kernel: (fuse_req_t) -> Void) {
        switch target {
        case .request(let req, _): kernel(req)
        case .recorder(let r):
            r.takeUnretainedValue().record(answer())
            r.release()
        }
    }

    /// Answers with an error. `Errno(rawValue: 0)` is not an error: it is answered EIO and
    /// logged (success without data is ``EmptyReply``'s `complete(nil)` only).
    public consuming func error(_ errno: Errno) {
        var errno = errno
        if errno.rawValue <= 0 {
            FuseKitLog.logger.error("\(Kind.self) answered with errno \(errno.rawValue): replying EIO")
            errno = .ioError
        }
        send(.error(errno)) { fuse_reply_err($0, errno.rawValue) }
        discard self
    }

    /// The request's `fuse_file_info` (open and create only).
    fileprivate var fileInfo: UnsafeMutablePointer<fuse_file_info>? {
        if case .request(_, let fi) = target { return fi }
        return nil
    }

    fileprivate consuming func answer(_ answer: @autoclosure () -> RecordedReply, kernel: (fuse_req_t) -> Void) {
        send(answer(), kernel: kernel)
        discard self
    }
}

/// A reply to answer from inside a closure: a non-escaping closure cannot consume a reply it
/// captures, so the reply moves into this box and the closure takes it out for its one answer.
/// A box dropped with its reply still inside answers EIO through the reply's `deinit`.
public struct PendingReply<Kind>: ~Copyable {
    private var reply: Reply<Kind>?

    public init(_ reply: consuming Reply<Kind>) { self.reply = consume reply }

    /// Gives the reply to `body` for its answer. A second call is a bug (the request was
    /// answered already): it is logged and `body` is not called.
    public mutating func answer(_ body: (consuming Reply<Kind>) -> Void) {
        guard let reply = reply.take() else {
            return FuseKitLog.logger.error("\(Kind.self) answered twice: the second answer is dropped")
        }
        body(reply)
    }

    /// The reply if it has not been answered yet (for a last answer after the closure ran).
    public mutating func take() -> Reply<Kind>? { reply.take() }
}

extension Reply where Kind == EmptyReply {
    /// Answers with an error, or success when `result` is nil.
    public consuming func complete(_ result: Errno?) {
        guard let result else { return answer(.success) { fuse_reply_err($0, 0) } }
        error(result)
    }
}

/// What a lookup or create answers: the inode, its attributes and how long the kernel may cache them.
public struct EntryParameters: Sendable {
    public var inode: InodeNumber
    public var attributes: stat
    public var attributeTimeout: Double
    public var entryTimeout: Double
    public init(inode: InodeNumber, attributes: stat, attributeTimeout: Double, entryTimeout: Double) {
        self.inode = inode; self.attributes = attributes
        self.attributeTimeout = attributeTimeout; self.entryTimeout = entryTimeout
    }

    var raw: fuse_entry_param {
        var p = fuse_entry_param()
        p.ino = inode.rawValue
        p.generation = 1
        p.attr = attributes
        p.attr_timeout = attributeTimeout
        p.entry_timeout = entryTimeout
        return p
    }
}

extension Reply where Kind == EntryReply {
    public consuming func entry(_ e: EntryParameters) {
        answer(.entry(e)) { req in
            var p = e.raw
            fuse_reply_entry(req, &p)
        }
    }
}

extension Reply where Kind == AttrReply {
    public consuming func attr(_ st: stat, timeout: Double) {
        answer(.attr(st, timeout: timeout)) { req in
            var st = st
            fuse_reply_attr(req, &st, timeout)
        }
    }
}

/// How the kernel should treat an open file (the parts of `fuse_file_info` an open may set).
public struct OpenOptions: Sendable, Equatable {
    public var handle = FuseFileHandle(0)
    /// FOPEN_DIRECT_IO: no page cache; every read and write reaches the daemon; MAP_SHARED fails with ENODEV.
    public var directIO = false
    /// FOPEN_KEEP_CACHE: do not drop the inode's page cache on this open.
    public var keepCache = false
    /// FOPEN_NONSEEKABLE: the kernel refuses `lseek`, `pread` and `pwrite` on this open file
    /// (ESPIPE) without asking the daemon.
    public var nonseekable = false
    /// FOPEN_NOFLUSH: `close` sends no FLUSH (nothing to flush: a read-only special file), so
    /// it never waits for the daemon, even one that is going away.
    public var noflush = false
    public init(handle: FuseFileHandle = FuseFileHandle(0), directIO: Bool = false, keepCache: Bool = false, nonseekable: Bool = false, noflush: Bool = false) {
        self.handle = handle; self.directIO = directIO; self.keepCache = keepCache; self.nonseekable = nonseekable
        self.noflush = noflush
    }

    func apply(to fi: UnsafeMutablePointer<fuse_file_info>) {
        fi.pointee.fh = handle.rawValue
        cfuse_fi_set_direct_io(fi, directIO ? 1 : 0)
        cfuse_fi_set_keep_cache(fi, keepCache ? 1 : 0)
        cfuse_fi_set_nonseekable(fi, nonseekable ? 1 : 0)
        cfuse_fi_set_noflush(fi, noflush ? 1 : 0)
    }
}

extension Reply where Kind == OpenReply {
    public consuming func open(_ o: OpenOptions) {
        let fi = fileInfo
        answer(.open(o)) { req in
            o.apply(to: fi!)
            fuse_reply_open(req, fi)
        }
    }
}

extension Reply where Kind == CreateReply {
    /// Answers a CREATE: the new entry and how the kernel should treat the file now open
    /// (`fuse_reply_create`, the only success libfuse allows for CREATE).
    public consuming func created(_ e: EntryParameters, _ o: OpenOptions) {
        let fi = fileInfo
        answer(.created(e, o)) { req in
            var p = e.raw
            o.apply(to: fi!)
            fuse_reply_create(req, &p, fi)
        }
    }
}

extension Reply where Kind == DataReply {
    /// Answers with one contiguous span of bytes, written straight from its memory
    /// (`fuse_reply_buf`: no copy). The memory only has to stay valid until this call returns.
    public consuming func data(_ bytes: UnsafeRawBufferPointer) {
        answer(.data(Array(bytes))) { req in
            fuse_reply_buf(req, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count)
        }
    }
}

extension Reply where Kind == WriteReply {
    public consuming func written(_ count: Int) {
        answer(.written(count)) { fuse_reply_write($0, count) }
    }
}

extension Reply where Kind == XattrReply {
    /// Answers a size probe (`size == 0` in the request) with the value's length.
    public consuming func size(_ count: Int) {
        answer(.xattrSize(count)) { fuse_reply_xattr($0, count) }
    }

    /// Answers with the value. The caller has checked it fits the requested size (else ERANGE).
    public consuming func value(_ bytes: [UInt8]) {
        answer(.xattrValue(bytes)) { req in
            bytes.withUnsafeBytes { _ = fuse_reply_buf(req, $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count) }
        }
    }

    /// The getxattr/listxattr size protocol in one place: a request for `requested == 0` bytes
    /// is a size probe (answered with the length), a value longer than `requested` is ERANGE,
    /// anything else is answered with the value.
    public consuming func value(_ bytes: [UInt8], requested: Int) {
        if requested == 0 { return size(bytes.count) }
        guard bytes.count <= requested else { return error(.outOfRange) }
        value(bytes)
    }
}

extension Reply where Kind == LseekReply {
    public consuming func offset(_ off: Int) {
        answer(.offset(off)) { fuse_reply_lseek($0, off) }
    }
}

extension Reply where Kind == IoctlReply {
    /// Answers with the ioctl's return value and the bytes copied back to the caller's argument
    /// (at most the request's `outputSize`; more makes the caller see EIO).
    public consuming func result(_ result: Int32, output: UnsafeRawBufferPointer) {
        answer(.ioctl(result, output: Array(output))) { fuse_reply_ioctl($0, result, output.baseAddress, output.count) }
    }

    /// Fails the ioctl with `errno` **and** copies `output` back to the caller's argument (at
    /// most `outputSize` bytes): the kernel's FUSE client (`fuse_do_ioctl`) copies the output
    /// out before it returns the negative result, so the caller sees -1/`errno` and the updated
    /// struct. Non-positive errnos are answered EIO, as in ``Reply/error(_:)``.
    public consuming func failure(_ errno: Errno, output: [UInt8]) {
        guard errno.rawValue > 0 else { return error(errno) }
        answer(.ioctlFailure(errno, output: output)) { req in output.withUnsafeBytes { _ = fuse_reply_ioctl(req, -errno.rawValue, $0.baseAddress, $0.count) } }
    }
}

extension Reply where Kind == StatfsReply {
    public consuming func statfs(_ st: statvfs) {
        answer(.statfs(st)) { req in
            var st = st
            fuse_reply_statfs(req, &st)
        }
    }
}

/// A directory listing being built for one readdir reply.
public struct DirectoryBuffer: ~Copyable {
    let capacity: Int
    var bytes: [CChar]
    /// The entries added, in order (what a recorded reply shows).
    var entries: [DirectoryEntry] = []

    init(capacity: Int) {
        self.capacity = capacity
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// Adds an entry; returns false (adding nothing) when it would not fit.
    /// `nextOffset` is the offset the kernel passes back to continue after this entry.
    public mutating func add(name: String, inode: InodeNumber, mode: mode_t, nextOffset: Int) -> Bool {
        var st = stat()
        st.st_ino = UInt(inode.rawValue)
        st.st_mode = mode
        // libfuse's fuse_add_direntry does not use its request argument.
        let need = fuse_add_direntry(nil, nil, 0, name, &st, 0)
        if bytes.count + need > capacity { return false }
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: need))
        bytes.withUnsafeMutableBufferPointer { buf in
            _ = fuse_add_direntry(nil, buf.baseAddress! + start, need, name, &st, nextOffset)
        }
        entries.append(DirectoryEntry(name: name, inode: inode, mode: mode, nextOffset: nextOffset))
        return true
    }
}

/// One entry of a readdir reply.
public struct DirectoryEntry: Sendable, Equatable {
    public var name: String
    public var inode: InodeNumber
    public var mode: mode_t
    public var nextOffset: Int
}

extension Reply where Kind == DirectoryReply {
    public consuming func entries(_ buffer: consuming DirectoryBuffer) {
        let bytes = buffer.bytes, entries = buffer.entries
        answer(.entries(entries)) { req in
            _ = bytes.withUnsafeBufferPointer { fuse_reply_buf(req, $0.baseAddress, $0.count) }
        }
    }

    /// A buffer to fill with entries for this reply.
    public func makeBuffer(capacity: Int) -> DirectoryBuffer { DirectoryBuffer(capacity: capacity) }
}

// MARK: - Recording (tests)

/// A reply as a value: what a handler answered, for tests that call handlers without a mount
/// (the way fuser tests its replies).
public enum RecordedReply: Sendable {
    case error(Errno)
    /// Success without data (``EmptyReply``).
    case success
    case entry(EntryParameters)
    case created(EntryParameters, OpenOptions)
    case attr(stat, timeout: Double)
    case open(OpenOptions)
    case data([UInt8])
    case written(Int)
    case xattrSize(Int)
    case xattrValue([UInt8])
    case offset(Int)
    case ioctl(Int32, output: [UInt8])
    /// An ioctl failed with the errno and copied `output` back (``Reply/failure(_:output:)``).
    case ioctlFailure(Errno, output: [UInt8])
    case statfs(statvfs)
    case entries([DirectoryEntry])
    /// The reply was dropped unanswered (the kernel would see EIO).
    case dropped

    /// The errno of an error reply, nil for any other.
    public var errno: Errno? {
        switch self {
        case .error(let e), .ioctlFailure(let e, _): e
        default: nil
        }
    }
}

/// Collects the replies given through `Reply(recordingInto:)`, in order.
public final class ReplyRecorder: Sendable {
    private let replies = Mutex<[RecordedReply]>([])

    public init() {}

    func record(_ reply: RecordedReply) { replies.withLock { $0.append(reply) } }

    /// Every reply recorded so far.
    public var all: [RecordedReply] { replies.withLock { $0 } }

    /// The only reply recorded; nil if there is none or more than one.
    public var only: RecordedReply? { replies.withLock { $0.count == 1 ? $0[0] : nil } }
}

/// FuseKit's own logger (dropped and malformed replies).
enum FuseKitLog {
    static let logger = Logger(label: "fusekit")
}
