import CLinuxSys
import Glibc

// Rules folder: each guest_memfd rule a request meets, written once, as the kernel applies it
// (kvm_gmem_fallocate, kvm_gmem_setattr, kvm_gmem_set_attributes, the VFS checks around llseek
// and open). Each decoder takes the raw value a FUSE request carries and throws the kernel's
// errno for what it refuses; the FUSE bridge only decodes, calls and replies.

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

    /// `kvm_gmem_fallocate` checks alignment before either mode: an offset or length that is
    /// not a multiple of the page size, or a length of 0, is EINVAL.
    public static func checkAlignment(offset: UInt64, length: UInt64) throws(GmemError) {
        guard offset % pageSize == 0, length % pageSize == 0, length > 0 else {
            throw .invalidArgument("offset and length must be non-zero multiples of 4096")
        }
    }
}

extension GuestMemFile {
    /// `fallocate(2)` after its mode was decoded. Rules, in order:
    /// - `offset < 0` or `length <= 0`: EINVAL (`vfs_fallocate`);
    /// - unaligned offset or length: EINVAL (both modes, ``FallocateMode/checkAlignment(offset:length:)``);
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
