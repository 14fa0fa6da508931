import LinuxProc

/// What a descriptor of a supervised process is, told from the target of its
/// `/proc/PID/fd/N` link and its inode (`/proc/PID/fdinfo/N`).
public enum DescriptorKind: Equatable, Sendable {
    /// The real `/dev/kvm`.
    case kvmDevice
    /// A real VM (`anon_inode:kvm-vm`).
    case vm
    /// The stand-in `/dev/kvm` handed out when there is no KVM (a memfd of ours).
    case emulatedKVMDevice
    /// A stand-in VM fd (a memfd of ours).
    case emulatedVM
    /// A guest_memfd this run created (a gmemfs file); `mmap`: created with
    /// GUEST_MEMFD_FLAG_MMAP.
    case guestMemfd(mmap: Bool)
    case other
}

/// The descriptors this run handed out, by inode, and how to tell them from others. Inode
/// numbers are kept per kind of file (gmemfs files, memfds): the two number their inodes
/// independently, so one number can be both.
public struct DescriptorRegistry: Sendable {
    /// memfd names of the stand-ins (the link reads `/memfd:NAME (deleted)`).
    public static let emulatedKVMName = "gmemctl-run:kvm"
    public static let emulatedVMName = "gmemctl-run:kvm-vm"

    /// The gmemfs mount point the guest_memfds are on.
    public let mountpoint: String
    private var files: [UInt64: DescriptorKind] = [:]
    private var memfds: [UInt64: DescriptorKind] = [:]

    public init(mountpoint: String) { self.mountpoint = mountpoint }

    private var mountPrefix: String { mountpoint.hasSuffix("/") ? mountpoint : mountpoint + "/" }

    /// Records a descriptor made by this run: a gmemfs file (``DescriptorKind/guestMemfd(mmap:)``)
    /// or a stand-in memfd.
    public mutating func register(inode: UInt64, as kind: DescriptorKind) {
        if case .guestMemfd = kind { files[inode] = kind } else { memfds[inode] = kind }
    }

    /// Whether a descriptor whose link reads `link` may be one this run made, so that its inode
    /// must be read to tell (every other link is classified from the link alone: a library's
    /// `mmap` costs one readlink).
    public func needsInode(link: String) -> Bool {
        link.hasPrefix(mountPrefix) || link.hasPrefix("/memfd:gmemctl-run:")
    }

    /// The kind of a descriptor whose link reads `link` and whose inode is `inode` (nil when
    /// fdinfo could not be read). A stand-in or guest_memfd needs both the name and one of our
    /// inodes: another memfd or gmemfs file with the same name is `other`.
    public func classify(link: String, inode: UInt64?) -> DescriptorKind {
        switch FDLink(link) {
        case .path("/dev/kvm", deleted: false)?: return .kvmDevice
        case .anonymousInode("kvm-vm")?: return .vm
        case .path(let path, deleted: true)? where inode != nil:
            // Ours are all unlinked: the guest_memfds right after creation, memfds always.
            if path.hasPrefix(mountPrefix) { return files[inode!] ?? .other }
            switch memfds[inode!] {
            case .emulatedKVMDevice? where path == "/memfd:" + Self.emulatedKVMName: return .emulatedKVMDevice
            case .emulatedVM? where path == "/memfd:" + Self.emulatedVMName: return .emulatedVM
            default: return .other
            }
        default: return .other
        }
    }
}
