import GmemABI
#if canImport(Glibc)
import Glibc
#endif

/// A call the filter handed to the supervisor, decoded.
public enum TrappedCall: Equatable, Sendable {
    case ioctl(command: UInt32, argument: UInt64)
    /// `mmap` with MAP_PRIVATE of a file (the filter passes every other mmap).
    case mmapPrivate
    /// `open`/`openat`/`openat2` of `path` (trapped only when KVM is emulated); `cloexec`
    /// tells whether O_CLOEXEC was asked.
    case open(path: String, cloexec: Bool)
}

/// What the supervisor does with a call.
public enum Decision: Equatable, Sendable {
    /// Let the kernel run the call (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`).
    case proceed
    /// Return this value without running the call.
    case answer(Int64)
    /// Fail with this errno; `note` is a line for stderr (printed once per kind).
    case fail(Int32, note: String?)
    /// `KVM_CREATE_GUEST_MEMFD`: read the struct at this address, validate it
    /// (``GuestMemfdCreation``), create a gmemfs file and install it.
    case createGuestMemfd(structAddress: UInt64)
    /// `KVM_SET_USER_MEMORY_REGION2`: read the struct at this address; if it names one of our
    /// guest_memfds, bind it (``MemslotBinding``); otherwise proceed.
    case inspectMemslot(structAddress: UInt64)
    /// Install a stand-in VM fd (close-on-exec, as `KVM_CREATE_VM` does).
    case createEmulatedVM
    /// Install a stand-in `/dev/kvm`.
    case openEmulatedKVM(cloexec: Bool)
}

/// The answers of `gmemctl run` (docs/run.md): pure, so that every choice is tested without a
/// supervised process.
public struct RunPolicy: Sendable {
    /// Whether /dev/kvm is emulated (none on the machine, or `--emulate-kvm`).
    public let emulatedKVM: Bool
    /// The number `KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES` is asked by.
    public let inPlaceCapability: UInt64

    public init(emulatedKVM: Bool, inPlaceCapability: UInt64 = KVMCapability.defaultInPlaceConversion) {
        self.emulatedKVM = emulatedKVM
        self.inPlaceCapability = inPlaceCapability
    }

    /// The errno of a stand-in KVM for what it cannot do: "no such ioctl on this device".
    public static let unsupportedErrno = ENOTTY
    /// `KVM_SET_USER_MEMORY_REGION2` on a gmemfs guest_memfd that `run` cannot bind: what the
    /// kernel answers for a descriptor it cannot use as a guest_memfd (`kvm_gmem_bind`: EINVAL).
    public static let memslotRefusal = EINVAL
    /// Why a memslot on a gmemfs guest_memfd was refused (one stderr line each).
    public enum MemslotNote {
        public static let withoutMmap = "KVM_SET_USER_MEMORY_REGION2: a gmemfs guest_memfd is bound to a memslot only when it was created with GUEST_MEMFD_FLAG_MMAP (its guest view is mapped into the VMM): EINVAL"
        public static let withoutGuestView = "KVM_SET_USER_MEMORY_REGION2: the mount has no guest view (start gmemfs with --guest-view to bind gmemfs guest_memfds to memslots): EINVAL"
        public static let architecture = "KVM_SET_USER_MEMORY_REGION2 with a gmemfs guest_memfd is bound only on x86_64 (the VMM's thread is driven by ptrace): EINVAL"
        public static func ptrace(_ reason: String) -> String {
            "KVM_SET_USER_MEMORY_REGION2 with a gmemfs guest_memfd: cannot ptrace the calling thread (\(reason)): EINVAL"
        }
    }

    /// Our answer to `KVM_CHECK_EXTENSION(capability)`, nil for "the real KVM's".
    public func capability(_ capability: UInt64) -> Int64? {
        switch capability {
        case KVMCapability.guestMemfd: 1
        case KVMCapability.guestMemfdFlags: Int64(GmemCreateFlag.allBits)
        case inPlaceCapability: Int64(GmemAttributeName.privateBit)
        default: emulatedKVM ? 0 : nil
        }
    }

    /// What to do with `call` on a descriptor of `kind` (`other` for calls without one).
    public func decide(_ call: TrappedCall, on kind: DescriptorKind) -> Decision {
        switch call {
        case .mmapPrivate:
            // kvm_gmem_mmap: a file without MMAP is ENODEV, checked first; then a mapping
            // without VM_SHARED is EINVAL.
            guard case .guestMemfd(let mmap) = kind else { return .proceed }
            return .fail(mmap ? EINVAL : ENODEV, note: nil)
        case .open(let path, let cloexec):
            return emulatedKVM && path == "/dev/kvm" ? .openEmulatedKVM(cloexec: cloexec) : .proceed
        case .ioctl(let command, let argument):
            return decideIoctl(command, argument, on: kind)
        }
    }

    private func decideIoctl(_ command: UInt32, _ argument: UInt64, on kind: DescriptorKind) -> Decision {
        switch kind {
        case .kvmDevice, .vm:
            switch command {
            case KVMIoctl.checkExtension: return capability(argument).map { .answer($0) } ?? .proceed
            case KVMIoctl.createGuestMemfd where kind == .vm: return .createGuestMemfd(structAddress: argument)
            case KVMIoctl.setUserMemoryRegion2 where kind == .vm: return .inspectMemslot(structAddress: argument)
            default: return .proceed
            }
        case .emulatedKVMDevice:
            switch command {
            case KVMIoctl.getAPIVersion: return .answer(kvmAPIVersion)
            case KVMIoctl.checkExtension: return .answer(capability(argument) ?? 0)
            // kvm_dev_ioctl_create_vm: an unknown machine type is EINVAL; only the default one
            // is offered.
            case KVMIoctl.createVM: return argument == 0 ? .createEmulatedVM : .fail(EINVAL, note: nil)
            default: return unsupported(command)
            }
        case .emulatedVM:
            switch command {
            case KVMIoctl.checkExtension: return .answer(capability(argument) ?? 0)
            case KVMIoctl.createGuestMemfd: return .createGuestMemfd(structAddress: argument)
            default: return unsupported(command)
            }
        case .guestMemfd, .other:
            return .proceed
        }
    }

    private func unsupported(_ command: UInt32) -> Decision {
        .fail(Self.unsupportedErrno, note: "\(KVMIoctl.name(command)) needs a real KVM: the stand-in /dev/kvm (no /dev/kvm here, or --emulate-kvm) has no vCPUs or memslots: ENOTTY")
    }
}

