import CLinuxSys
import Glibc
import GmemABI

// The guest_memfd rules a request meets before it reaches a file, as the kernel applies them
// (kvm_gmem_fallocate, kvm_gmem_setattr, the VFS checks around llseek and open). Each decoder
// takes the raw value a FUSE request carries and throws the kernel's errno for what it refuses;
// the FUSE bridge only decodes, calls and replies.

/// A `fallocate(2)` mode `kvm_gmem_fallocate` accepts.
public enum FallocateMode: Sendable, Equatable {
    /// `FALLOC_FL_KEEP_SIZE`: allocate the range (``GuestMemFile/allocate(offset:length:)``).
    case allocate
    /// `FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE`: free the range (``GuestMemFile/punchHole(offset:length:)``).
    case punchHole

    /// Decodes `fallocate(2)`'s `mode`:
    /// - without `FALLOC_FL_KEEP_SIZE`: EOPNOTSUPP (the size is fixed);
    /// - with any bit but `KEEP_SIZE` and `PUNCH_HOLE`: EOPNOTSUPP.
    public init(flags: Int32) throws(GmemError) {
        let keepSize = Int32(FALLOC_FL_KEEP_SIZE), punchHole = Int32(FALLOC_FL_PUNCH_HOLE)
        guard flags & keepSize != 0 else { throw .notSupported("fallocate without FALLOC_FL_KEEP_SIZE") }
        guard flags & ~(keepSize | punchHole) == 0 else { throw .notSupported("fallocate mode 0x\(String(flags, radix: 16))") }
        self = flags & punchHole != 0 ? .punchHole : .allocate
    }
}

extension GuestMemFile {
    /// `fallocate(2)` after its mode was decoded. Rules, in order:
    /// - `offset < 0` or `length <= 0`: EINVAL (`vfs_fallocate`);
    /// - unaligned offset or length: EINVAL (both modes);
    /// - `.allocate`: a range past the end is EINVAL, the memory cap ENOSPC;
    /// - `.punchHole`: a range at or past the end is a no-op, one crossing it is clipped.
    public func fallocate(_ mode: FallocateMode, offset: Int, length: Int) throws(GmemError) {
        guard offset >= 0, length > 0 else { throw .invalidArgument("fallocate needs offset >= 0 and length > 0") }
        switch mode {
        case .allocate: try allocate(offset: UInt64(offset), length: UInt64(length))
        case .punchHole: try punchHole(offset: UInt64(offset), length: UInt64(length))
        }
    }
}

extension GuestMemFile {
    /// The offset of a read or write request: negative is EINVAL (`rw_verify_area`).
    public static func offset(_ offset: Int) throws(GmemError) -> UInt64 {
        guard offset >= 0 else { throw .invalidArgument("negative offset") }
        return UInt64(offset)
    }
}

/// The `lseek(2)` whence values the daemon answers (the kernel handles `SEEK_SET`, `SEEK_CUR`
/// and `SEEK_END` itself).
public enum SeekWhence: Sendable, Equatable {
    /// `SEEK_DATA`: the next byte of data (a private page, or an allocated shared one).
    case data
    /// `SEEK_HOLE`: the next byte of a hole (a shared, unallocated page; the end of the file counts).
    case hole
}

/// An `lseek(2)` with `SEEK_DATA` or `SEEK_HOLE`, decoded.
public struct SeekRequest: Sendable, Equatable {
    public let offset: UInt64
    public let whence: SeekWhence

    /// Rules, in order: any other whence is EINVAL; a negative offset is ENXIO (no data or hole
    /// lies at or after it, as in the kernel's `seek_data`/`seek_hole` helpers).
    public init(offset: Int, whence: Int32) throws(GmemError) {
        switch whence {
        case Int32(CLINUX_SEEK_DATA): self.whence = .data
        case Int32(CLINUX_SEEK_HOLE): self.whence = .hole
        default: throw .invalidArgument("whence \(whence) is not SEEK_DATA or SEEK_HOLE")
        }
        guard offset >= 0 else { throw .noSuchOffset(Int64(offset)) }
        self.offset = UInt64(offset)
    }
}

/// How an open file may be used: `open(2)`'s `O_ACCMODE`, kept as the open file's handle.
public enum AccessMode: UInt64, Sendable, Equatable {
    case readOnly = 0     // O_RDONLY
    case writeOnly = 1    // O_WRONLY
    case readWrite = 2    // O_RDWR
    /// `O_ACCMODE` itself (3): Linux's "neither read nor write" mode.
    case accessMode = 3

    /// The access mode of `open(2)` flags.
    public init(openFlags: Int32) { self.init(handle: UInt64(UInt32(bitPattern: openFlags))) }

    /// The access mode stored in an open file's handle (``handle(serial:)``).
    public init(handle: UInt64) {
        switch handle & UInt64(O_ACCMODE) {
        case 0: self = .readOnly
        case 1: self = .writeOnly
        case 2: self = .readWrite
        default: self = .accessMode
        }
    }

    /// The handle an open answers with: `serial << 2 | mode`. The low two bits are the access
    /// mode (read back by ``init(handle:)`` for the ioctl's write check); the serial, unique per
    /// open, makes the handle name the open file description its page references belong to.
    /// A serial of 2^62 or more loses its top bits (never reached: one open per nanosecond
    /// would take 146 years).
    public func handle(serial: UInt64) -> UInt64 { serial << 2 | rawValue }

    /// A conversion changes the file: like `write(2)` it needs a file opened for writing
    /// (EBADF otherwise, as `write(2)` answers). gmemfs's own rule: a guest_memfd is always open
    /// read-write and cannot be reopened, so the kernel never meets a read-only descriptor.
    /// Read-only and `O_ACCMODE` opens (Linux gives the latter neither read nor write access)
    /// are refused.
    public func checkConversion() throws(GmemError) {
        guard self == .writeOnly || self == .readWrite else {
            throw .badHandle("a conversion needs a file opened for writing")
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
}

/// Which node a metadata request addresses (the rules differ by kind, not by name).
public enum NodeKind: Sendable, Equatable {
    /// The mount root (the VM fd).
    case root
    /// `MOUNTPOINT/.guest`.
    case guestDirectory
    /// A gmem file as the host sees it.
    case hostFile
    /// A gmem file through `.guest`.
    case guestFile

    public var isDirectory: Bool { self == .root || self == .guestDirectory }
}

/// Which parts of a node a setattr changes (the parts whose rules differ).
public struct AttributeChanges: Sendable, Equatable {
    public var size: Bool
    public var ownerOrMode: Bool
    public init(size: Bool, ownerOrMode: Bool) { self.size = size; self.ownerOrMode = ownerOrMode }
}

/// Whether the conversion interface exists: the kernel's `kvm.gmem_in_place_conversion` module
/// parameter (read-only; off on arm64 and on x86 builds without a confidential-VM type).
/// `gmemfs --no-in-place` plays a kernel where it is off, so that a VMM's fallback path can be
/// tested; nothing but the conversion changes.
public enum InPlaceConversion: Sendable, Equatable {
    case enabled
    case disabled

    /// Where a conversion request came from (each has its own errno for "no such operation").
    public enum Interface: Sendable, Equatable { case ioctl, xattr }

    /// `.disabled`: `KVM_SET_MEMORY_ATTRIBUTES2` is ENOTTY, as `kvm_gmem_ioctl` answers before
    /// it looks at the argument; `user.gmem.set_attributes` is EOPNOTSUPP, setxattr's "this
    /// attribute cannot be set here" (ENOTTY is no setxattr errno, and EINVAL would blame the
    /// value). Checked before anything else about the request.
    public func checkConversion(via interface: Interface) throws(GmemError) {
        guard self == .disabled else { return }
        switch interface {
        case .ioctl: throw .unknownIoctl(KVMMemoryAttributes2.ioctlNumber)
        case .xattr: throw .notSupported("in-place conversion is off (--no-in-place)")
        }
    }
}
