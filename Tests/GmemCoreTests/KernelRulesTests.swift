import CLinuxSys
import Glibc
import GmemCore
import Testing

/// The guest_memfd rules in GmemCore, each against what the kernel answers (mount-free).
@Suite struct KernelRulesTests {
    let keepSize = Int32(FALLOC_FL_KEEP_SIZE), punchHole = Int32(FALLOC_FL_PUNCH_HOLE)

    /// kvm_gmem_fallocate: KEEP_SIZE required, PUNCH_HOLE the only other bit.
    @Test func fallocateModes() throws {
        #expect(try FallocateMode(flags: keepSize) == .allocate)
        #expect(try FallocateMode(flags: keepSize | punchHole) == .punchHole)
        // Every mode bit of linux/falloc.h but those two (and none): EOPNOTSUPP.
        for bad: Int32 in [0, punchHole, 0x04, 0x08, 0x10, 0x20, 0x40, keepSize | 0x08, keepSize | punchHole | 0x10, -1] {
            #expect(throws: GmemError.self, "mode \(bad)") { try FallocateMode(flags: bad) }
            do { _ = try FallocateMode(flags: bad) } catch { #expect(error.errno == .notSupported) }
        }
    }

    /// vfs_fallocate's range check, then kvm_gmem_fallocate's alignment (both modes) and EOF rules.
    @Test func fallocateRanges() throws {
        let p = Int(pageSize)
        let f = try GuestMemFile(size: 8 * pageSize, flags: [.initShared], budget: MemoryBudget(limitBytes: nil))
        for mode in [FallocateMode.allocate, .punchHole] {
            for (offset, length) in [(-p, p), (0, 0), (0, -p), (1, p), (0, p - 1), (p, 1)] {
                #expect(throws: GmemError.self, "\(mode) \(offset) \(length)") { try f.fallocate(mode, offset: offset, length: length) }
                do { try f.fallocate(mode, offset: offset, length: length) } catch { #expect(error.errno == .invalidArgument) }
            }
        }
        #expect(f.allocatedBytes == 0)
        // Allocate past the end: EINVAL, nothing allocated; a punch past it: clipped, success.
        #expect(throws: GmemError.self) { try f.fallocate(.allocate, offset: 7 * p, length: 2 * p) }
        #expect(f.allocatedBytes == 0)
        try f.fallocate(.allocate, offset: 6 * p, length: 2 * p)
        #expect(f.allocatedBytes == 2 * pageSize)
        try f.fallocate(.punchHole, offset: 7 * p, length: 100 * p)
        try f.fallocate(.punchHole, offset: 100 * p, length: p)
        #expect(f.allocatedBytes == pageSize)
    }

    /// Whence first (EINVAL), then a negative offset (ENXIO), as the daemon's lseek answered.
    @Test func seekRequests() throws {
        #expect(try SeekRequest(offset: 5, whence: Int32(CLINUX_SEEK_DATA)) == SeekRequest(offset: 5, whence: Int32(CLINUX_SEEK_DATA)))
        #expect(try SeekRequest(offset: 5, whence: Int32(CLINUX_SEEK_DATA)).whence == .data)
        #expect(try SeekRequest(offset: 0, whence: Int32(CLINUX_SEEK_HOLE)).whence == .hole)
        for whence in [SEEK_SET, SEEK_CUR, SEEK_END, 5, -1] {
            #expect(throws: GmemError.invalidArgument("whence \(whence) is not SEEK_DATA or SEEK_HOLE")) {
                try SeekRequest(offset: -1, whence: whence)
            }
        }
        #expect(throws: GmemError.noSuchOffset(-1)) { try SeekRequest(offset: -1, whence: Int32(CLINUX_SEEK_DATA)) }
        #expect(GmemError.noSuchOffset(-1).errno == .noSuchAddressOrDevice)
    }

    /// O_TRUNC is EINVAL (the size is fixed); only a read-only or O_ACCMODE open refuses a
    /// conversion (EBADF); the special files refuse any write access or O_TRUNC (EACCES).
    @Test func openFlagsAndAccessModes() throws {
        #expect(throws: GmemError.self) { try OpenRequest(flags: O_RDWR | O_TRUNC) }
        do { _ = try OpenRequest(flags: O_WRONLY | O_TRUNC) } catch { #expect(error.errno == .invalidArgument) }
        for (flags, mode) in [(O_RDONLY, AccessMode.readOnly), (O_WRONLY, .writeOnly), (O_RDWR, .readWrite), (O_ACCMODE, .noReadWrite)] {
            let access = try OpenRequest(flags: flags | O_CLOEXEC | O_APPEND).access
            #expect(access == mode)
        }
        try OpenRequest.checkReadOnly(flags: O_RDONLY | O_CLOEXEC, name: ".trace")
        for flags in [O_WRONLY, O_RDWR, O_ACCMODE, O_RDONLY | O_TRUNC] {
            do { try OpenRequest.checkReadOnly(flags: flags, name: ".trace"); Issue.record("flags \(flags) opened") } catch { #expect(error.errno == .permissionDenied) }
        }
        #expect(throws: GmemError.self) { try AccessMode.readOnly.checkConversion() }
        do { try AccessMode.readOnly.checkConversion() } catch { #expect(error.errno == .badFileDescriptor) }
        // O_ACCMODE (3): no FMODE_WRITE, so the kernel's ioctl answers EBADF too.
        do { try AccessMode.noReadWrite.checkConversion(); Issue.record("O_ACCMODE converted") } catch { #expect(error.errno == .badFileDescriptor) }
        try AccessMode.writeOnly.checkConversion()
        try AccessMode.readWrite.checkConversion()
    }

    /// kvm_gmem_setattr: truncation is EINVAL (EISDIR on directories); kernel fidelity refuses
    /// every change of the host file; the owner and mode of the guest view and the special
    /// nodes are fixed (EPERM).
    @Test func setattrRules() throws {
        func errno(_ f: Fidelity, _ size: Bool, _ owner: Bool, _ node: NodeKind) -> Int32? {
            do { try f.checkSetattr(AttributeChanges(size: size, ownerOrMode: owner), on: node); return nil } catch { return error.errno.rawValue }
        }
        for f in [Fidelity.tools, .kernel] {
            #expect(errno(f, true, false, .hostFile) == EINVAL)
            #expect(errno(f, true, true, .guestFile) == EINVAL)
            #expect(errno(f, true, false, .root) == EISDIR)
            #expect(errno(f, true, false, .guestDirectory) == EISDIR)
            #expect(errno(f, false, true, .guestFile) == EPERM)
            #expect(errno(f, false, true, .guestDirectory) == EPERM)
            #expect(errno(f, false, false, .guestFile) == nil)
            #expect(errno(f, false, true, .root) == nil)
            #expect(errno(f, true, false, .specialDirectory) == EISDIR && errno(f, true, false, .specialFile) == EINVAL)
            #expect(errno(f, false, true, .specialDirectory) == EPERM && errno(f, false, true, .specialFile) == EPERM)
            #expect(errno(f, false, false, .specialFile) == nil)
        }
        #expect(errno(.tools, false, true, .hostFile) == nil)
        #expect(errno(.tools, false, false, .hostFile) == nil)
        #expect(errno(.kernel, false, true, .hostFile) == EINVAL)
        #expect(errno(.kernel, false, false, .hostFile) == EINVAL)
    }

    /// Kernel fidelity: no read (but page-ins of buffered files), no write (but writeback), no
    /// fsync, no llseek, st_blocks 0. The default allows them all.
    @Test func fidelityRules() throws {
        var asked = false
        try Fidelity.tools.checkHostRead(buffered: false) { asked = true; return true }
        #expect(!asked)   // the requester is only inspected in kernel mode
        #expect(throws: GmemError.self) { try Fidelity.kernel.checkHostRead(buffered: false) { false } }
        #expect(throws: GmemError.self) { try Fidelity.kernel.checkHostRead(buffered: true) { true } }
        try Fidelity.kernel.checkHostRead(buffered: true) { false }
        try Fidelity.tools.checkHostWrite(writepage: false)
        try Fidelity.kernel.checkHostWrite(writepage: true)
        #expect(throws: GmemError.self) { try Fidelity.kernel.checkHostWrite(writepage: false) }
        try Fidelity.tools.checkHostFsync()
        #expect(throws: GmemError.self) { try Fidelity.kernel.checkHostFsync() }
        #expect(Fidelity.tools.hostFileSeekable && !Fidelity.kernel.hostFileSeekable)
        #expect(Fidelity.tools.hostBlocks(allocatedBytes: 3 * pageSize) == 24)
        #expect(Fidelity.kernel.hostBlocks(allocatedBytes: 3 * pageSize) == 0)
    }

    /// A read or write offset must not be negative (EINVAL).
    @Test func requestOffsets() throws {
        #expect(try GuestMemFile.offset(0) == 0)
        #expect(try GuestMemFile.offset(.max) == UInt64(Int.max))
        #expect(throws: GmemError.self) { try GuestMemFile.offset(-1) }
        #expect(throws: GmemError.self) { try GuestMemFile.offset(.min) }
    }

    /// `kvm.gmem_in_place_conversion` off (`--no-in-place`): the ioctl is ENOTTY (kvm_gmem_ioctl
    /// answers before reading its argument), the xattr EOPNOTSUPP; on, both pass.
    @Test func conversionsWithoutInPlaceConversion() throws {
        for interface in [InPlaceConversion.Interface.ioctl, .xattr] {
            try InPlaceConversion.enabled.checkConversion(via: interface)
        }
        do { try InPlaceConversion.disabled.checkConversion(via: .ioctl); Issue.record("ioctl passed") } catch {
            #expect(error.errno == .inappropriateIOCTLForDevice)
        }
        do { try InPlaceConversion.disabled.checkConversion(via: .xattr); Issue.record("xattr passed") } catch {
            #expect(error.errno == .notSupported)
        }
    }

    /// `AS_ENOSPC`: only a writeback's ENOSPC is recorded, reported once by fsync or (with
    /// `.tools`) by close; a `--kernel-compat` close reports nothing and keeps it for fsync.
    @Test func writebackErrorIsReportedOnce() {
        let e = WritebackError()
        #expect(!e.record(.noSpace("cap"), writepage: false))
        #expect(!e.record(.invalidArgument("x"), writepage: true))
        #expect(e.take() == nil)
        #expect(e.record(.noSpace("cap"), writepage: true))
        #expect(e.takeAtClose(.kernel) == nil)
        #expect(e.takeAtClose(.tools)?.errno == .noSpace)
        #expect(e.take() == nil)
        _ = e.record(.noSpace("cap"), writepage: true)
        #expect(e.take()?.errno == .noSpace && e.take() == nil)
    }
}
