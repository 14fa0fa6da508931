import GmemABI
import SystemPackage

/// Everything a request can be refused for, with where it went wrong.
///
/// The FUSE layer never picks an errno itself: it throws or replies with a case and asks
/// ``errno`` (the single mapping).
public enum GmemError: Error, Equatable, Sendable {
    /// Malformed or out-of-range input: bad text, unknown bits, misalignment, overflow, size 0,
    /// a range past the end of the file.
    case invalidArgument(String)
    /// A host access touched the private page at this byte offset.
    case privatePage(offset: UInt64)
    /// A write access to a read-only special file (`.trace`, `.maps/NAME`), also for root.
    case accessDenied(String)
    /// A parked request (a `.trace` READ) was ended by a signal or by the file's release.
    case interrupted(String)
    /// A file with this name exists.
    case exists(String)
    /// No such file or inode.
    case notFound(String)
    /// A file operation on a directory (read, write, open, truncate…).
    case isDirectory(String)
    /// A directory operation on something that is not one (lookup in a file).
    case notDirectory(String)
    /// An ioctl this file system does not have (or an ioctl on a directory).
    case unknownIoctl(UInt32)
    /// A write at or past the end of the fixed-size file, or the memory cap was reached.
    case noSpace(String)
    /// A fallocate mode, xattr or operation this file system does not have.
    case notSupported(String)
    /// An unknown `user.gmem.*` name was read.
    case noData(String)
    /// The value exceeds the 64 KiB xattr limit.
    case valueTooLarge(Int)
    /// SEEK_DATA/SEEK_HOLE found nothing at or after the offset (or the offset is negative).
    case noSuchOffset(Int64)
    /// The file is larger than this daemon can reserve address space for.
    case fileTooLarge(UInt64)
    /// The operation is refused by design (create by O_CREAT, mkdir, rename, …).
    case notPermitted(String)
    /// The open handle lacks the access mode the operation needs.
    case badHandle(String)
    /// A to-private conversion met a page with references (pins) at this byte offset: EAGAIN,
    /// with the offset reported as `error_offset`.
    case referenced(offset: UInt64)
    /// An armed fault (`user.gmem.inject`) failed the conversion; `errorOffset` is reported.
    case injected(InjectedFailure, errorOffset: UInt64)
    /// Unpinning a page the open file holds no reference on.
    case notReferenced(String)
    /// Pinning a private page through the host view (get_user_pages of a guest_memfd mapping
    /// fails at a private page).
    case badAddress(offset: UInt64)
    /// A counter would overflow (too many references on a page).
    case outOfMemory(String)

    /// The errno a caller sees. This is the only place errors become errnos.
    public var errno: Errno {
        switch self {
        case .invalidArgument: .invalidArgument
        case .privatePage, .accessDenied: .permissionDenied
        case .interrupted: .interrupted
        case .exists: .fileExists
        case .notFound: .noSuchFileOrDirectory
        case .isDirectory: .isDirectory
        case .notDirectory: .notDirectory
        case .unknownIoctl: .inappropriateIOCTLForDevice
        case .noSpace: .noSpace
        case .notSupported: .notSupported
        case .noData: .noData
        case .valueTooLarge: .argListTooLong
        case .noSuchOffset: .noSuchAddressOrDevice
        case .fileTooLarge: .fileTooLarge
        case .notPermitted: .notPermitted
        case .badHandle: .badFileDescriptor
        case .referenced: .resourceTemporarilyUnavailable
        case .injected(.enomem, _), .outOfMemory: .noMemory
        case .injected(.eagain, _): .resourceTemporarilyUnavailable
        case .injected(.eintr, _): .interrupted
        case .notReferenced: .noSuchFileOrDirectory
        case .badAddress: .badAddress
        }
    }

    /// The errno a `setxattr` caller sees. EAGAIN cannot be one: the VFS uses -EAGAIN as its
    /// own "no handler" marker in `__vfs_setxattr_noperm` and turns it into EOPNOTSUPP, so a
    /// conversion refused for references answers EBUSY through the xattr (the ioctl says EAGAIN).
    public var setxattrErrno: Errno {
        errno == .resourceTemporarilyUnavailable ? .resourceBusy : errno
    }

    /// The byte offset a failed conversion reports in `error_offset` (nil when the failure
    /// names no page, and then nothing is copied back).
    public var errorOffset: UInt64? {
        switch self {
        case .referenced(let o), .injected(_, let o): o
        default: nil
        }
    }
}

extension GmemError {
    /// Interface text or bytes the daemon refuses: a bad window name reads as a missing
    /// attribute (ENODATA), everything else is EINVAL.
    public init(_ error: GmemABIError) {
        switch error {
        case .malformedWindow: self = .noData(error.description)
        default: self = .invalidArgument(error.description)
        }
    }
}

extension GmemError: CustomStringConvertible {
    /// A sentence for people: what went wrong, then the errno a caller sees.
    public var description: String {
        let what: String
        switch self {
        case .invalidArgument(let s), .noSpace(let s), .notSupported(let s), .notPermitted(let s), .badHandle(let s),
             .isDirectory(let s), .notDirectory(let s), .accessDenied(let s), .interrupted(let s),
             .notReferenced(let s), .outOfMemory(let s): what = s
        case .unknownIoctl(let c): what = "unknown ioctl 0x\(String(c, radix: 16))"
        case .referenced(let o): what = "page at offset \(o) has references"
        case .injected(let f, let o): what = "injected \(f.rawValue) (error_offset \(o))"
        case .badAddress(let o): what = "page at offset \(o) is private and cannot be pinned"
        case .privatePage(let o): what = "page at offset \(o) is private"
        case .exists(let n): what = "'\(n)' exists"
        case .notFound(let n): what = "no \(n)"
        case .noData(let n): what = "no attribute \(n)"
        case .valueTooLarge(let n): what = "value of \(n) bytes exceeds the 64 KiB xattr limit"
        case .noSuchOffset(let o): what = "no data or hole at or after \(o)"
        case .fileTooLarge(let s): what = "\(s) bytes exceeds the \(GmemLimit.fileSizeMax >> 40) TiB file limit"
        }
        return "\(what) (\(errno))"
    }
}
