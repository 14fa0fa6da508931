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
        guard GmemFileSize.problem(size) == nil else { return .failure(RunErrno(EINVAL)) }
        return .success(GuestMemfdCreation(size: size, flags: flags))
    }

    /// The `user.gmem.create` value for a file named `name`: `NAME SIZE FLAGS`, FLAGS numeric.
    public func createValue(name: String) -> String { "\(name) \(size) \(flags)" }
}

/// `struct kvm_userspace_memory_region2` (160 bytes, little-endian): `u32 slot; u32 flags;
/// u64 guest_phys_addr; u64 memory_size; u64 userspace_addr; u64 guest_memfd_offset;
/// u32 guest_memfd; u32 pad1; u64 pad2[14]`.
public struct MemoryRegion2: Equatable, Sendable {
    public static let structSize = 160
    /// The struct as read.
    public let bytes: [UInt8]
    public let slot: UInt32
    public let flags: UInt32
    public let guestPhysAddr: UInt64
    public let memorySize: UInt64
    public let userspaceAddr: UInt64
    public let guestMemfdOffset: UInt64
    /// The guest_memfd descriptor (meaningful with ``kvmMemGuestMemfd``).
    public let guestMemfd: Int32

    public init?(_ bytes: [UInt8]) {
        guard bytes.count >= Self.structSize else { return nil }
        self.bytes = Array(bytes[0..<Self.structSize])
        slot = UInt32(truncatingIfNeeded: littleEndianWord(bytes, at: 0))
        flags = UInt32(truncatingIfNeeded: littleEndianWord(bytes, at: 0) >> 32)
        guestPhysAddr = littleEndianWord(bytes, at: 8)
        memorySize = littleEndianWord(bytes, at: 16)
        userspaceAddr = littleEndianWord(bytes, at: 24)
        guestMemfdOffset = littleEndianWord(bytes, at: 32)
        guestMemfd = Int32(bitPattern: UInt32(truncatingIfNeeded: littleEndianWord(bytes, at: 40)))
    }

    public var usesGuestMemfd: Bool { flags & kvmMemGuestMemfd != 0 }
}

/// How `run` has the real KVM set a memslot that names one of its guest_memfds
/// (docs/run.md, "Memslots"): the same request without `KVM_MEM_GUEST_MEMFD`, its
/// `userspace_addr` a `MAP_SHARED` mapping of the file's guest view in the caller.
public enum MemslotBinding: Equatable, Sendable {
    /// `memory_size` 0: the slot is deleted; `region` is the request without the guest_memfd
    /// flag and fields (the real KVM has no guest_memfd to check them against).
    case delete(region: [UInt8])
    /// `region` is the request rewritten, with `userspace_addr` = `guest_memfd_offset`: the
    /// address of the mapping of the whole file (from offset 0) must be added.
    case bind(region: [UInt8])

    /// `KVM_MEM_LOG_DIRTY_PAGES`: refused with `KVM_MEM_GUEST_MEMFD` (`check_memory_region_flags`).
    public static let logDirtyPages: UInt32 = 1 << 0

    /// The plan for `region` on a guest_memfd of `fileSize` bytes, or the errno the kernel
    /// answers, checked in `__kvm_set_memory_region`'s order (flags; memory_size,
    /// guest_phys_addr and userspace_addr page-aligned; guest_memfd_offset page-aligned and
    /// offset + size not overflowing) and then `kvm_gmem_bind`'s (offset + size within the
    /// file). The real KVM checks the rest (slot id, overlaps) on the rewritten request.
    public static func plan(_ region: MemoryRegion2, fileSize: UInt64) -> Result<MemslotBinding, RunErrno> {
        let page = gmemPageSize
        guard region.flags & logDirtyPages == 0 else { return .failure(RunErrno(EINVAL)) }
        guard region.memorySize % page == 0, region.guestPhysAddr % page == 0, region.userspaceAddr % page == 0 else {
            return .failure(RunErrno(EINVAL))
        }
        let (end, overflow) = region.guestMemfdOffset.addingReportingOverflow(region.memorySize)
        guard region.guestMemfdOffset % page == 0, !overflow else { return .failure(RunErrno(EINVAL)) }
        var bytes = region.bytes
        store(region.flags & ~kvmMemGuestMemfd, as: UInt32.self, in: &bytes, at: 4)
        store(0, as: UInt64.self, in: &bytes, at: 32)
        store(0, as: UInt32.self, in: &bytes, at: 40)
        guard region.memorySize != 0 else { return .success(.delete(region: bytes)) }
        guard end <= fileSize else { return .failure(RunErrno(EINVAL)) }
        store(region.guestMemfdOffset, as: UInt64.self, in: &bytes, at: 24)
        return .success(.bind(region: bytes))
    }

    private static func store<T: FixedWidthInteger>(_ value: T, as: T.Type, in bytes: inout [UInt8], at offset: Int) {
        for i in 0..<(T.bitWidth / 8) { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    }
}

/// An errno a supervised call is answered with.
public struct RunErrno: Error, Equatable, Sendable {
    public let code: Int32
    public init(_ code: Int32) { self.code = code }
}

func littleEndianWord(_ bytes: [UInt8], at offset: Int) -> UInt64 {
    (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) }
}
