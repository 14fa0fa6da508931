import GmemABI

/// The part of the kernel's KVM uAPI (`include/uapi/linux/kvm.h`) that `gmemctl run` answers
/// or looks at. Numbers are the asm-generic `_IO*` encodings (x86_64 and arm64 alike):
/// direction << 30 | size << 16 | type 0xAE << 8 | number.
public enum KVMIoctl {
    /// `KVMIO`: the type byte of every KVM ioctl.
    public static let type: UInt32 = 0xAE
    /// `_IO(KVMIO, 0x00)` on /dev/kvm: answers `KVM_API_VERSION`.
    public static let getAPIVersion: UInt32 = 0xAE00
    /// `_IO(KVMIO, 0x01)` on /dev/kvm: the argument is the machine type; returns a VM fd.
    public static let createVM: UInt32 = 0xAE01
    /// `_IO(KVMIO, 0x03)` on /dev/kvm or a VM fd: the argument is the capability number.
    public static let checkExtension: UInt32 = 0xAE03
    /// `_IOWR(KVMIO, 0xd4, struct kvm_create_guest_memfd)` (64 bytes) on a VM fd.
    public static let createGuestMemfd: UInt32 = 0xC040_AED4
    /// `_IOW(KVMIO, 0x49, struct kvm_userspace_memory_region2)` (160 bytes) on a VM fd.
    public static let setUserMemoryRegion2: UInt32 = 0x40A0_AE49
    /// `KVM_SET_MEMORY_ATTRIBUTES2` on a guest_memfd (gmemfs serves it itself).
    public static let setMemoryAttributes2 = KVMMemoryAttributes2.ioctlNumber

    /// The ioctls the filter traps on every machine (with a real KVM, only these are slowed).
    public static let trappedWithKVM: [UInt32] = [checkExtension, createGuestMemfd, setUserMemoryRegion2]

    /// A name for a stderr line, or the number in hex.
    public static func name(_ command: UInt32) -> String {
        let known: [UInt32: String] = [
            getAPIVersion: "KVM_GET_API_VERSION", createVM: "KVM_CREATE_VM", checkExtension: "KVM_CHECK_EXTENSION",
            0xAE04: "KVM_GET_VCPU_MMAP_SIZE", 0xAE41: "KVM_CREATE_VCPU", 0x4020_AE46: "KVM_SET_USER_MEMORY_REGION",
            createGuestMemfd: "KVM_CREATE_GUEST_MEMFD", setUserMemoryRegion2: "KVM_SET_USER_MEMORY_REGION2",
            0x4020_AED2: "KVM_SET_MEMORY_ATTRIBUTES", 0xAE80: "KVM_RUN",
        ]
        return known[command] ?? "0x" + String(command, radix: 16, uppercase: true)
    }
}

/// `KVM_API_VERSION`: what `KVM_GET_API_VERSION` has answered since Linux 2.6.22.
public let kvmAPIVersion: Int64 = 12

/// Capability numbers (`KVM_CAP_*`) `gmemctl run` answers.
public enum KVMCapability {
    /// `KVM_CAP_GUEST_MEMFD`: 1 when `KVM_CREATE_GUEST_MEMFD` exists.
    public static let guestMemfd: UInt64 = 234
    /// `KVM_CAP_GUEST_MEMFD_FLAGS`: the creation flags supported (MMAP | INIT_SHARED = 3).
    public static let guestMemfdFlags: UInt64 = 244
    /// `KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES` (in-place conversion; answers the attributes
    /// `KVM_SET_MEMORY_ATTRIBUTES2` takes). Its number is not final upstream: revisions of the
    /// series used 246, 248, 249 and 250. This default is v8's; `--in-place-cap` changes it.
    public static let defaultInPlaceConversion: UInt64 = 250
}

/// `KVM_MEM_GUEST_MEMFD`: a memslot flag saying `guest_memfd` names a guest_memfd.
public let kvmMemGuestMemfd: UInt32 = 1 << 2
