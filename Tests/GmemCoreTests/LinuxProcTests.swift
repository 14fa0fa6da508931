import Glibc
import LinuxProc
import Testing

/// `/proc` parsing (proc(5)) with literal lines: `/proc/TID/syscall`, `/proc/PID/fdinfo/N`,
/// `/proc/PID/status`, and the per-architecture system call numbers.
struct LinuxProcTests {
    @Test func syscallBlocked() throws {
        let s = try #require(ProcSyscall(text: "16 0x3 0xc040aed4 0x7ffd5e0c1a40 0x0 0x0 0x0 0x7ffd5e0c19f8 0x7f3a1c2e3b5b\n"))
        #expect(s == .blocked(number: 16, arguments: [3, 0xc040aed4, 0x7ffd5e0c1a40, 0, 0, 0]))
    }

    @Test func syscallNotInOneOrRunning() {
        #expect(ProcSyscall(text: "-1 0x7ffd5e0c19f8 0x401136\n") == .notInSyscall)
        #expect(ProcSyscall(text: "running\n") == .running)
    }

    @Test(arguments: [
        "",
        "16 0x3 0x1 0x2 0x0 0x0 0x0 0x7ffd",             // 8 fields
        "16 3 0x1 0x2 0x0 0x0 0x0 0x7ffd 0x40",          // an argument without 0x
        "-2 0x1 0x2",                                     // a negative number other than -1
        "-1 0x1",                                         // -1 without both addresses
        "x 0x1 0x2 0x3 0x4 0x5 0x6 0x7 0x8",              // not a number
        "running 0x1",
        "16 0x 0x1 0x2 0x0 0x0 0x0 0x7ffd 0x40",          // empty hex
    ])
    func syscallRejectsMalformed(_ text: String) {
        #expect(ProcSyscall(text: text[...]) == nil)
    }

    static let fdinfo = "pos:\t4096\nflags:\t02100002\nmnt_id:\t187\nino:\t18\n"

    @Test func fdinfoFields() throws {
        let f = try #require(FDInfo(text: Self.fdinfo[...]))
        #expect(f.position == 4096 && f.mountID == 187 && f.inode == 18)
        #expect(f.flags == 0o2100002)   // O_CLOEXEC | O_LARGEFILE | O_RDWR, octal
        // File systems append lines of their own (eventfd, inotify, ...): ignored.
        let more = try #require(FDInfo(text: (Self.fdinfo + "eventfd-count:    0\ntfd:        5 events:       19\n")[...]))
        #expect(more == f)
    }

    @Test(arguments: [
        "pos:\t0\nflags:\t02\nmnt_id:\t1\n",               // no ino (kernels before 5.14)
        "pos:\t0\nflags:\t09\nmnt_id:\t1\nino:\t2\n",      // flags not octal
        "pos:\t-1\nflags:\t02\nmnt_id:\t1\nino:\t2\n",     // negative position
        "pos:\t0\nflags:\t02\nmnt_id:\t1\nino:\t2\nino:\t3\n", // a field twice
        "",
    ])
    func fdinfoRejectsMalformed(_ text: String) {
        #expect(FDInfo(text: text[...]) == nil)
    }

    @Test func status() throws {
        let text = "Name:\tguest_memfd_te\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nNgid:\t0\nPid:\t4243\nPPid:\t4200\nSigBlk:\t0000000000010000\n"
        let s = try #require(ProcStatus(text: text[...]))
        #expect(s.name == "guest_memfd_te" && s.threadGroupID == 4242 && s.threadID == 4243 && s.parentID == 4200)
        #expect(s.fields["State"] == "S (sleeping)")
        #expect(s.signalMask("SigBlk") == 1 << 16)
        #expect(s.signalMask("SigPnd") == nil)
    }

    @Test(arguments: ["Name guest\n", "Tgid:\t1\nTgid:\t2\n", ":\tvalue\n"])
    func statusRejectsMalformed(_ text: String) {
        #expect(ProcStatus(text: text[...]) == nil)
    }

    @Test func fdLinks() {
        #expect(FDLink("/dev/kvm") == .path("/dev/kvm", deleted: false))
        #expect(FDLink("/tmp/a b/mnt/kvm-gmem.42.1 (deleted)") == .path("/tmp/a b/mnt/kvm-gmem.42.1", deleted: true))
        #expect(FDLink("/memfd:gmemctl-run:kvm-vm (deleted)") == .path("/memfd:gmemctl-run:kvm-vm", deleted: true))
        #expect(FDLink("anon_inode:kvm-vm") == .anonymousInode("kvm-vm"))
        #expect(FDLink("anon_inode:[eventfd]") == .anonymousInode("[eventfd]"))
        #expect(FDLink("pipe:[123]") == .pseudo(type: "pipe", inode: 123))
        #expect(FDLink("socket:[4026531840]") == .pseudo(type: "socket", inode: 4026531840))
        #expect(FDLink("/dev/kvm")?.path == "/dev/kvm" && FDLink("anon_inode:kvm-vm")?.path == nil)
    }

    @Test(arguments: ["", "kvm-vm", "anon_inode:", ":[1]", "pipe:123", "pipe:[x]", "pipe:[-1]"])
    func fdLinksRejectMalformed(_ text: String) {
        #expect(FDLink(text) == nil)
    }

    @Test func syscallNumbers() {
#if arch(x86_64)
        #expect(SyscallNumber.ioctl == 16 && SyscallNumber.mmap == 9 && SyscallNumber.open == 2 && SyscallNumber.openat == 257)
        #expect(SyscallNumber.readFamily == [0: 0, 17: 0, 19: 0, 40: 1, 275: 0, 295: 0, 326: 0, 327: 0])
        #expect(AuditArch.native == 0xC000_003E)
        #expect(SyscallNumber.populateFamily == [9, 25, 149, 151, 216, 325])
#elseif arch(arm64)
        #expect(SyscallNumber.ioctl == 29 && SyscallNumber.mmap == 222 && SyscallNumber.open == nil && SyscallNumber.openat == 56)
        #expect(SyscallNumber.readFamily[63] == 0 && SyscallNumber.readFamily[71] == 1)
        #expect(SyscallNumber.populateFamily == [216, 222, 228, 230, 234, 284])
#endif
        #expect(SyscallNumber.openat2 == 437)
    }

    /// The readers on this very process: its own thread is in the read of its syscall file, its
    /// status names it, and a descriptor's fdinfo and link name the file opened.
    @Test func readersOnThisProcess() throws {
        // `/proc/thread-self` links to `PID/task/TID`: this thread's id without gettid(2).
        let tid = try #require(ProcFiles.readLink("/proc/thread-self")?.split(separator: "/").last.flatMap { pid_t($0) })
        // A thread reading its own syscall file sees that very read(2): 256 bytes asked.
        guard case .blocked(let number, let arguments)? = ProcFiles.readSyscall(tid) else { Issue.record("not blocked"); return }
        #expect(number == SyscallNumber.read && arguments[2] == 256)
        let status = try #require(ProcFiles.readStatus(tid))
        #expect(status.threadID == tid && status.threadGroupID == getpid())
        #expect(ProcFiles.readComm(tid) == status.name)
        let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
        #expect(fd >= 0)
        defer { close(fd) }
        var st = stat()
        #expect(fstat(fd, &st) == 0)
        #expect(ProcFiles.readFDInfo(getpid(), fd)?.inode == UInt64(st.st_ino))
        #expect(ProcFiles.readLink(ProcFiles.fd(getpid(), fd)) == "/dev/null")
        #expect(ProcFiles.readSyscall(-1) == nil && ProcFiles.readStatus(-1) == nil && ProcFiles.readComm(-1) == nil)
    }
}
