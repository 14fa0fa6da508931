import Glibc
import GmemRun
import Testing

/// `gmemctl run`'s answers, without a supervised process: capabilities, creation validation in
/// the kernel's order, descriptor classification, MAP_PRIVATE, memslots, the stand-in KVM.
struct RunPolicyTests {
    let real = RunPolicy(emulatedKVM: false)
    let emulated = RunPolicy(emulatedKVM: true, inPlaceCapability: 246)

    @Test func ioctlNumbersAreTheUAPIEncodings() {
        // _IOC(dir, type, nr, size) = dir << 30 | size << 16 | type << 8 | nr (asm-generic).
        func ioc(_ dir: UInt32, _ nr: UInt32, _ size: UInt32) -> UInt32 { dir << 30 | size << 16 | 0xAE << 8 | nr }
        #expect(KVMIoctl.createGuestMemfd == ioc(3, 0xd4, 64))
        #expect(KVMIoctl.setUserMemoryRegion2 == ioc(1, 0x49, 160))
        #expect(KVMIoctl.checkExtension == ioc(0, 0x03, 0))
        #expect(KVMIoctl.setMemoryAttributes2 == ioc(3, 0xd2, 128))
    }

    @Test func capabilities() {
        #expect(real.capability(234) == 1 && real.capability(244) == 3 && real.capability(250) == 8)
        #expect(real.capability(1) == nil)           // the real KVM answers
        #expect(emulated.capability(246) == 8 && emulated.capability(250) == 0 && emulated.capability(1) == 0)
        #expect(real.decide(.ioctl(command: KVMIoctl.checkExtension, argument: 234), on: .kvmDevice) == .answer(1))
        #expect(real.decide(.ioctl(command: KVMIoctl.checkExtension, argument: 244), on: .vm) == .answer(3))
        #expect(real.decide(.ioctl(command: KVMIoctl.checkExtension, argument: 7), on: .vm) == .proceed)
        #expect(real.decide(.ioctl(command: KVMIoctl.checkExtension, argument: 234), on: .other) == .proceed)
    }

    private func creationBytes(size: UInt64, flags: UInt64, reserved: UInt64 = 0) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 64)
        for i in 0..<8 {
            bytes[i] = UInt8(truncatingIfNeeded: size >> (8 * UInt64(i)))
            bytes[8 + i] = UInt8(truncatingIfNeeded: flags >> (8 * UInt64(i)))
            bytes[16 + i] = UInt8(truncatingIfNeeded: reserved >> (8 * UInt64(i)))
        }
        return bytes
    }

    @Test func creationIsValidatedInTheKernelsOrder() {
        #expect(GuestMemfdCreation.decode(creationBytes(size: 8192, flags: 3)) == .success(GuestMemfdCreation(size: 8192, flags: 3)))
        // reserved words are not checked, as in kvm_gmem_create
        #expect(GuestMemfdCreation.decode(creationBytes(size: 4096, flags: 0, reserved: 7)) == .success(GuestMemfdCreation(size: 4096, flags: 0)))
        for size: UInt64 in [0, 1, 4095, 4097, 1 << 63, UInt64.max - 4095] {
            #expect(GuestMemfdCreation.decode(creationBytes(size: size, flags: 0)) == .failure(RunErrno(EINVAL)), "size \(size)")
        }
        for bit: UInt64 in 2..<64 {
            #expect(GuestMemfdCreation.decode(creationBytes(size: 4096, flags: 1 << bit)) == .failure(RunErrno(EINVAL)))
        }
        #expect(GuestMemfdCreation.decode([]) == .failure(RunErrno(EFAULT)))
        #expect(GuestMemfdCreation(size: 65536, flags: 1).createValue(name: "kvm-gmem.42.1") == "kvm-gmem.42.1 65536 1")
    }

    @Test func memslotStruct() throws {
        var bytes = [UInt8](repeating: 0, count: 160)
        bytes[0] = 5; bytes[4] = 4; bytes[40] = 9
        let r = try #require(MemoryRegion2(bytes))
        #expect(r.slot == 5 && r.flags == 4 && r.guestMemfd == 9 && r.usesGuestMemfd)
        #expect(MemoryRegion2(Array(bytes.prefix(159))) == nil)
    }

    /// A KVM_SET_USER_MEMORY_REGION2 struct with the given fields.
    static func region(slot: UInt32 = 0, flags: UInt32 = kvmMemGuestMemfd, gpa: UInt64 = 0, size: UInt64, user: UInt64 = 0,
                       offset: UInt64 = 0, fd: UInt32 = 7) -> MemoryRegion2 {
        var bytes = [UInt8](repeating: 0, count: 160)
        func put(_ v: UInt64, _ at: Int, _ width: Int) { for i in 0..<width { bytes[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) } }
        put(UInt64(slot), 0, 4); put(UInt64(flags), 4, 4); put(gpa, 8, 8); put(size, 16, 8); put(user, 24, 8)
        put(offset, 32, 8); put(UInt64(fd), 40, 4)
        bytes[100] = 0xAA   // padding is carried over untouched
        return MemoryRegion2(bytes)!
    }

    /// __kvm_set_memory_region's checks, then kvm_gmem_bind's; the rewritten request has no
    /// guest_memfd flag or fields and userspace_addr = guest_memfd_offset (the mapping's address
    /// is added by the supervisor).
    @Test func memslotBindingPlans() throws {
        let invalid = Result<MemslotBinding, RunErrno>.failure(RunErrno(EINVAL))
        let file: UInt64 = 0x10000
        #expect(MemslotBinding.plan(Self.region(flags: kvmMemGuestMemfd | 1, size: 0x1000), fileSize: file) == invalid)
        #expect(MemslotBinding.plan(Self.region(size: 0x1001), fileSize: file) == invalid)
        #expect(MemslotBinding.plan(Self.region(gpa: 0x800, size: 0x1000), fileSize: file) == invalid)
        #expect(MemslotBinding.plan(Self.region(size: 0x1000, user: 0x10), fileSize: file) == invalid)
        #expect(MemslotBinding.plan(Self.region(size: 0x1000, offset: 1), fileSize: file) == invalid)
        #expect(MemslotBinding.plan(Self.region(size: 0x2000, offset: UInt64.max & ~0xfff), fileSize: .max) == invalid)
        #expect(MemslotBinding.plan(Self.region(size: 0x1000, offset: 0x10000), fileSize: file) == invalid)
        #expect(MemslotBinding.plan(Self.region(size: 0x10000, offset: 0), fileSize: file) != invalid)
        guard case .bind(let bytes)? = try? MemslotBinding.plan(Self.region(slot: 3, gpa: 0x100000, size: 0x1000, user: 0x7000, offset: 0x3000), fileSize: file).get() else {
            Issue.record("no bind plan"); return
        }
        let r = try #require(MemoryRegion2(bytes))
        #expect(r.slot == 3 && r.flags == 0 && r.guestPhysAddr == 0x100000 && r.memorySize == 0x1000)
        #expect(r.userspaceAddr == 0x3000 && r.guestMemfdOffset == 0 && r.guestMemfd == 0 && bytes[100] == 0xAA)
        guard case .delete(let gone)? = try? MemslotBinding.plan(Self.region(size: 0, user: 0x7000, offset: 0x3000), fileSize: file).get() else {
            Issue.record("no delete plan"); return
        }
        let d = try #require(MemoryRegion2(gone))
        #expect(d.flags == 0 && d.userspaceAddr == 0x7000 && d.guestMemfd == 0 && d.guestMemfdOffset == 0)
    }

    @Test func decisionsWithARealKVM() {
        #expect(real.decide(.ioctl(command: KVMIoctl.createGuestMemfd, argument: 0x1000), on: .vm) == .createGuestMemfd(structAddress: 0x1000))
        #expect(real.decide(.ioctl(command: KVMIoctl.createGuestMemfd, argument: 0x1000), on: .kvmDevice) == .proceed)
        #expect(real.decide(.ioctl(command: KVMIoctl.setUserMemoryRegion2, argument: 0x2000), on: .vm) == .inspectMemslot(structAddress: 0x2000))
        #expect(real.decide(.mmapPrivate, on: .guestMemfd(mmap: true)) == .fail(EINVAL, note: nil))
        #expect(real.decide(.mmapPrivate, on: .guestMemfd(mmap: false)) == .fail(ENODEV, note: nil))   // checked first
        #expect(real.decide(.mmapPrivate, on: .other) == .proceed)
        #expect(real.decide(.open(path: "/dev/kvm", cloexec: true), on: .other) == .proceed)
        #expect(real.decide(.ioctl(command: KVMIoctl.setMemoryAttributes2, argument: 0), on: .guestMemfd(mmap: true)) == .proceed)
    }

    @Test func decisionsOfTheStandIn() {
        #expect(emulated.decide(.open(path: "/dev/kvm", cloexec: true), on: .other) == .openEmulatedKVM(cloexec: true))
        #expect(emulated.decide(.open(path: "/dev/kvmx", cloexec: true), on: .other) == .proceed)
        #expect(emulated.decide(.ioctl(command: KVMIoctl.getAPIVersion, argument: 0), on: .emulatedKVMDevice) == .answer(12))
        #expect(emulated.decide(.ioctl(command: KVMIoctl.createVM, argument: 0), on: .emulatedKVMDevice) == .createEmulatedVM)
        #expect(emulated.decide(.ioctl(command: KVMIoctl.createVM, argument: 1), on: .emulatedKVMDevice) == .fail(EINVAL, note: nil))
        #expect(emulated.decide(.ioctl(command: KVMIoctl.createGuestMemfd, argument: 8), on: .emulatedVM) == .createGuestMemfd(structAddress: 8))
        guard case .fail(ENOTTY, let note?) = emulated.decide(.ioctl(command: 0xAE41, argument: 0), on: .emulatedVM) else {
            Issue.record("KVM_CREATE_VCPU on the stand-in must fail with ENOTTY and a note")
            return
        }
        #expect(note.hasPrefix("KVM_CREATE_VCPU needs a real KVM"))
    }

    @Test func classification() {
        var r = DescriptorRegistry(mountpoint: "/tmp/x/mnt")
        r.register(inode: 18, as: .guestMemfd(mmap: false))
        r.register(inode: 99, as: .emulatedVM)
        #expect(r.classify(link: "/dev/kvm", inode: 5) == .kvmDevice)
        #expect(r.classify(link: "anon_inode:kvm-vm", inode: nil) == .vm)
        #expect(r.classify(link: "/tmp/x/mnt/kvm-gmem.1.1 (deleted)", inode: 18) == .guestMemfd(mmap: false))
        #expect(r.classify(link: "/tmp/x/mnt/kvm-gmem.1.1 (deleted)", inode: 19) == .other)   // not ours
        #expect(r.classify(link: "/tmp/y/kvm-gmem.1.1 (deleted)", inode: 18) == .other)       // elsewhere
        #expect(r.classify(link: "/memfd:gmemctl-run:kvm-vm (deleted)", inode: 99) == .emulatedVM)
        #expect(r.classify(link: "/memfd:gmemctl-run:kvm-vm (deleted)", inode: 98) == .other)
        // One inode number can be a gmemfs file and a memfd at once: each keeps its kind.
        r.register(inode: 18, as: .emulatedKVMDevice)
        #expect(r.classify(link: "/tmp/x/mnt/kvm-gmem.1.1 (deleted)", inode: 18) == .guestMemfd(mmap: false))
        #expect(r.classify(link: "/memfd:gmemctl-run:kvm (deleted)", inode: 18) == .emulatedKVMDevice)
        #expect(!r.needsInode(link: "/usr/lib/x86_64-linux-gnu/libc.so.6") && !r.needsInode(link: "/dev/kvm"))
        #expect(r.needsInode(link: "/tmp/x/mnt/kvm-gmem.1.1 (deleted)") && r.needsInode(link: "/memfd:gmemctl-run:kvm (deleted)"))
    }
}
