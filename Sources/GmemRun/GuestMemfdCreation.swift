import GmemABI
#if canImport(Glibc)
import Glibc
#endif

/// `struct kvm_create_guest_memfd { u64 size; u64 flags; u64 reserved[6]; }` (64 bytes,
/// little-endian), validated as the kernel's `kvm_gmem_create` does, in its order:
/// 1. `flags & ~supported` → EINVAL (supported: MMAP | INIT_SHARED, as for a VM whose
///    architecture allows INIT_SHARED: any VM that is not confidential);
/// 2. `size <= 0 || !PAGE_ALIGNED(size)` with `size` a signed `loff_t` → EINVAL.
/// `reserved` is not checked (the kernel does not check it either). An unreadable struct is
/// EFAULT, before either (`copy_from_user` in `kvm_vm_ioctl`).
public struct GuestMemfdCreation: Equatable, Sendable {
    public static let structSize = 64
    public let size: UInt64
    public let flags: UInt64

    /// A creation already validated (the values ``decode(_:)`` accepts).
    public init(size: UInt64, flags: UInt64) { self.size = size; self.flags = flags }

    /// The creation the bytes ask for, or the errno the kernel would answer.
    public static func decode(_ bytes: [UInt8]) -> Result<GuestMemfdCreation, RunErrno> {
        guard bytes.count >= structSize else { return .failure(RunErrno(EFAULT)) }
        let size = littleEndianWord(bytes, at: 0), flags = littleEndianWord(bytes, at: 8)
        guard flags & ~GmemCreateFlag.allBits == 0 else { return .failure(RunErrno(EINVAL)) }
        guard Int64(bitPattern: size) > 0, size % gmemPageSize == 0 else { return .failure(RunErrno(EINVAL)) }
        return .success(GuestMemfdCreation(size: size, flags: flags))
    }

    /// The `user.gmem.create` value for a file named `name`: `NAME SIZE FLAGS`, FLAGS numeric.
    public func createValue(name: String) -> String { "\(name) \(size) \(flags)" }
}

/// `struct kvm_userspace_memory_region2` (160 bytes): the fields `run` looks at.
public struct MemoryRegion2: Equatable, Sendable {
    public static let structSize = 160
    public let slot: UInt32
    public let flags: UInt32
    /// The guest_memfd descriptor (meaningful with ``kvmMemGuestMemfd``).
    public let guestMemfd: Int32

    public init?(_ bytes: [UInt8]) {
        guard bytes.count >= Self.structSize else { return nil }
        slot = UInt32(truncatingIfNeeded: littleEndianWord(bytes, at: 0))
        flags = UInt32(truncatingIfNeeded: littleEndianWord(bytes, at: 0) >> 32)
        guestMemfd = Int32(bitPattern: UInt32(truncatingIfNeeded: littleEndianWord(bytes, at: 40)))
    }

    public var usesGuestMemfd: Bool { flags & kvmMemGuestMemfd != 0 }
}

/// An errno a supervised call is answered with.
public struct RunErrno: Error, Equatable, Sendable {
    public let code: Int32
    public init(_ code: Int32) { self.code = code }
}

func littleEndianWord(_ bytes: [UInt8], at offset: Int) -> UInt64 {
    (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) }
}
