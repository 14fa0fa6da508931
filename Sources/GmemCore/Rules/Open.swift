import Glibc

/// How an open file may be used: `open(2)`'s `O_ACCMODE`.
public enum AccessMode: UInt64, Sendable, Equatable {
    case readOnly = 0     // O_RDONLY
    case writeOnly = 1    // O_WRONLY
    case readWrite = 2    // O_RDWR
    /// `O_ACCMODE` itself (3): Linux's "neither read nor write" mode (ioctls only).
    case noReadWrite = 3

    /// The access mode of `open(2)` flags.
    public init(openFlags: Int32) { self.init(accessBits: UInt64(UInt32(bitPattern: openFlags))) }

    /// The access mode of `open(2)`'s `O_ACCMODE` bits (of flags, or of a value that keeps them
    /// in its low two bits).
    public init(accessBits: UInt64) {
        switch accessBits & UInt64(O_ACCMODE) {
        case 0: self = .readOnly
        case 1: self = .writeOnly
        case 2: self = .readWrite
        default: self = .noReadWrite
        }
    }
}

/// `open(2)` of a gmem file, decoded.
public struct OpenRequest: Sendable, Equatable {
    public let access: AccessMode

    /// Rules: `O_TRUNC` is EINVAL (the size is fixed; FUSE delivers it to open because the
    /// daemon asks for atomic O_TRUNC).
    public init(flags: Int32) throws(GmemError) {
        guard flags & O_TRUNC == 0 else { throw .invalidArgument("O_TRUNC: the size of a gmem file is fixed") }
        access = AccessMode(openFlags: flags)
    }

    /// The file system's own read-only files (`.trace`, `.maps/NAME`): any write access or
    /// `O_TRUNC` is EACCES (root passes the kernel's mode check, so the daemon answers it).
    public static func checkReadOnly(flags: Int32, name: String) throws(GmemError) {
        guard flags & O_ACCMODE == O_RDONLY, flags & O_TRUNC == 0 else { throw .accessDenied("\(name) is read-only") }
    }
}
