import CLinuxSys
import CSeccomp
import Glibc
import GmemABI
import GmemRun
import LinuxProc

/// Runs COMMAND under the seccomp filter and answers its trapped calls (docs/run.md): the
/// decisions come from ``RunPolicy``; this type reads the caller's descriptors and memory,
/// makes gmemfs files and stand-in descriptors, and sends the answers.
final class Supervisor {
    let policy: RunPolicy
    /// The gmemfs mount root new guest_memfds are created on.
    let mountRoot: String
    var registry: DescriptorRegistry
    var created = 0
    var printedNotes: Set<String> = []
    var listener: Int32 = -1
    /// The guest views of this run's MMAP guest_memfds, by the host inode.
    var guestViews: [UInt64: GuestView] = [:]
    /// The number of kept guest views at which they are next swept (``sweepGuestViews()``).
    var sweepAt = 256

    init(policy: RunPolicy, mountRoot: String) {
        self.policy = policy
        self.mountRoot = mountRoot
        registry = DescriptorRegistry(mountpoint: mountRoot)
    }

    /// The process group signals are passed on to (read by the signal handler).
    nonisolated(unsafe) static var forwardGroup: pid_t = 0
    /// The write end of the SIGCHLD self-pipe (read by the signal handler).
    nonisolated(unsafe) static var wakeFD: Int32 = -1

    /// Runs `command` until it exits; returns its status as a shell would (128+N for signal N).
    /// `started` gets COMMAND's process group as soon as it exists.
    func run(_ command: [String], started: (pid_t) -> Void) throws -> Int32 {
        var options = cseccomp_filter_options()
        options.emulate_kvm = policy.emulatedKVM ? 1 : 0
        let trapped = KVMIoctl.trappedWithKVM
        options.ioctl_count = UInt32(trapped.count)
        withUnsafeMutableBytes(of: &options.ioctls) { raw in
            for (i, c) in trapped.enumerated() { raw.storeBytes(of: c, toByteOffset: i * 4, as: UInt32.self) }
        }
        let takeTerminal = isatty(STDIN_FILENO) == 1 && tcgetpgrp(STDIN_FILENO) == getpgrp()
        var cArguments: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        var execErrno: Int32 = 0
        let pid = cseccomp_spawn(&cArguments, &options, takeTerminal ? 1 : 0, &listener, &execErrno)
        guard pid > 0 else { throw SystemError("start \(command[0]) under a seccomp filter") }
        started(pid)
        Self.forwardGroup = pid
        // A stopped group acts on the signal only once continued (as a shell's `kill` of a job).
        let forward: @convention(c) (Int32) -> Void = { sig in
            if Supervisor.forwardGroup > 0 { kill(-Supervisor.forwardGroup, sig); kill(-Supervisor.forwardGroup, SIGCONT) }
        }
        // Unblocked too: a parent (a test runner's spawn) may have handed them down blocked.
        var forwarded = sigset_t()
        sigemptyset(&forwarded)
        for sig in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] {
            signal(sig, forward)
            sigaddset(&forwarded, sig)
        }
        pthread_sigmask(SIG_UNBLOCK, &forwarded, nil)
        defer {
            if listener >= 0 { close(listener) }
            if takeTerminal {
                signal(SIGTTOU, SIG_IGN)
                tcsetpgrp(STDIN_FILENO, getpgrp())
                signal(SIGTTOU, SIG_DFL)
            }
        }
        if execErrno != 0 {
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            if execErrno < 0 { throw SystemError("install the seccomp filter (PR_SET_NO_NEW_PRIVS, SECCOMP_FILTER_FLAG_NEW_LISTENER)", errno: -execErrno) }
            printError("gmemctl: \(command[0]): \(SystemError.describe(execErrno))")
            return execErrno == ENOENT ? 127 : 126
        }
        let status = loop(child: pid, jobControl: takeTerminal)
        // What COMMAND left running in its group goes with it: the mount is about to go.
        kill(-pid, SIGKILL)
        return status
    }

    /// Answers notifications until the child exits; its wait status as a shell status. With
    /// `jobControl` (COMMAND has the terminal), a stopped COMMAND (Ctrl-Z) stops gmemctl too, as
    /// a shell's job: the terminal goes back to gmemctl's group, gmemctl stops, and when the
    /// shell continues it (`fg`), COMMAND gets the terminal and SIGCONT.
    func loop(child: pid_t, jobControl: Bool) -> Int32 {
        // SIGCHLD (exit or stop of a child) writes a byte to a pipe that poll watches: no wakeup
        // is lost between the wait below and the poll.
        var wakePipe: [Int32] = [-1, -1]
        if pipe(&wakePipe) == 0 {
            for fd in wakePipe {
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                _ = fcntl(fd, F_SETFL, O_NONBLOCK)
            }
            Self.wakeFD = wakePipe[1]
        } else {
            wakePipe = [-1, -1]
        }
        let wake: @convention(c) (Int32) -> Void = { _ in
            var byte: UInt8 = 0
            if Supervisor.wakeFD >= 0 { _ = write(Supervisor.wakeFD, &byte, 1) }
        }
        signal(SIGCHLD, wake)
        var chld = sigset_t()
        sigemptyset(&chld)
        sigaddset(&chld, SIGCHLD)
        pthread_sigmask(SIG_UNBLOCK, &chld, nil)   // a parent may have handed it down blocked
        defer {
            signal(SIGCHLD, SIG_DFL)
            Self.wakeFD = -1
            if wakePipe[0] >= 0 { close(wakePipe[0]); close(wakePipe[1]) }
        }
        var fds = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: wakePipe[0], events: Int16(POLLIN), revents: 0)]
        while true {
            var status: Int32 = 0
            if waitpid(child, &status, WNOHANG | WUNTRACED) == child {
                if status & 0xff == 0x7f {   // stopped
                    if jobControl { suspend(with: child) }
                } else {
                    let signal = status & 0x7f
                    return signal == 0 ? (status >> 8) & 0xff : 128 + signal
                }
            }
            fds[0].revents = 0; fds[1].revents = 0
            // Without the pipe the child is looked at every 100 ms.
            let n = poll(&fds, 2, wakePipe[0] >= 0 ? -1 : 100)
            if n < 0 && errno == EINTR { continue }
            if fds[0].revents & Int16(POLLIN) != 0 {
                var notification = cseccomp_notification()
                if cseccomp_receive(listener, &notification) == 0 { handle(notification) }
            } else if fds[0].revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 {
                fds[0].fd = -1   // every filtered task is gone
            }
            if fds[1].revents & Int16(POLLIN) != 0 {
                var drain = [UInt8](repeating: 0, count: 64)
                while read(wakePipe[0], &drain, drain.count) > 0 {}
            }
        }
    }

    /// COMMAND was stopped from the terminal: stop gmemctl's own job until the shell continues it.
    func suspend(with child: pid_t) {
        signal(SIGTTOU, SIG_IGN)
        tcsetpgrp(STDIN_FILENO, getpgrp())
        kill(getpid(), SIGSTOP)
        tcsetpgrp(STDIN_FILENO, child)
        signal(SIGTTOU, SIG_DFL)
        kill(-child, SIGCONT)
    }

    // MARK: - One notification

    func handle(_ n: cseccomp_notification) {
        let tid = pid_t(bitPattern: n.pid)
        let a = n.args
        let decision: Decision
        switch Int(n.nr) {
        case SyscallNumber.ioctl:
            let fd = Int32(truncatingIfNeeded: a.0)
            decision = policy.decide(.ioctl(command: UInt32(truncatingIfNeeded: a.1), argument: a.2), on: kind(tid, fd))
        case SyscallNumber.mmap:
            decision = policy.decide(.mmapPrivate, on: kind(tid, Int32(truncatingIfNeeded: a.4)))
        case SyscallNumber.openat:
            decision = openDecision(tid, path: a.1, flags: a.2, id: n.id)
        case SyscallNumber.openat2:
            var how = [UInt8](repeating: 0, count: 8)
            let flags = readMemory(tid, a.2, into: &how) ? how.withUnsafeBytes { $0.load(as: UInt64.self) } : 0
            decision = openDecision(tid, path: a.1, flags: flags, id: n.id)
        case let nr where nr == SyscallNumber.open:
            decision = openDecision(tid, path: a.0, flags: a.1, id: n.id)
        default:
            decision = .proceed
        }
        execute(decision, tid: tid, id: n.id)
    }

    func openDecision(_ tid: pid_t, path address: UInt64, flags: UInt64, id: UInt64) -> Decision {
        guard let path = readString(tid, address), cseccomp_id_valid(listener, id) == 1 else { return .proceed }
        return policy.decide(.open(path: path, cloexec: flags & UInt64(O_CLOEXEC) != 0), on: .other)
    }

    func execute(_ decision: Decision, tid: pid_t, id: UInt64) {
        switch decision {
        case .proceed:
            cseccomp_continue(listener, id)
        case .answer(let value):
            cseccomp_respond(listener, id, value, 0)
        case .fail(let code, let note):
            if let note { noteOnce(note) }
            cseccomp_respond(listener, id, 0, code)
        case .createGuestMemfd(let address):
            createGuestMemfd(tid: tid, id: id, address: address)
        case .inspectMemslot(let address):
            var bytes = [UInt8](repeating: 0, count: MemoryRegion2.structSize)
            guard readMemory(tid, address, into: &bytes), let region = MemoryRegion2(bytes) else {
                cseccomp_respond(listener, id, 0, EFAULT)
                return
            }
            guard cseccomp_id_valid(listener, id) == 1 else { return }
            let (fdKind, inode) = kindAndInode(tid, region.guestMemfd)
            if region.usesGuestMemfd, case .guestMemfd(let mmap) = fdKind, let inode {
                bindMemslot(region, file: inode, mmap: mmap, tid: tid, id: id)
            } else {
                cseccomp_continue(listener, id)
            }
        case .createEmulatedVM:
            install(memfd: DescriptorRegistry.emulatedVMName, as: .emulatedVM, cloexec: true, id: id)
        case .openEmulatedKVM(let cloexec):
            install(memfd: DescriptorRegistry.emulatedKVMName, as: .emulatedKVMDevice, cloexec: cloexec, id: id)
        }
    }

    /// `KVM_CREATE_GUEST_MEMFD`: validated as the kernel does, then a gmemfs file named
    /// `kvm-gmem.PID.N` (PID the calling process), opened read-write, unlinked (anonymous: its
    /// memory goes with the last descriptor) and installed without close-on-exec.
    func createGuestMemfd(tid: pid_t, id: UInt64, address: UInt64) {
        var bytes = [UInt8](repeating: 0, count: GuestMemfdCreation.structSize)
        let readable = readMemory(tid, address, into: &bytes)
        guard cseccomp_id_valid(listener, id) == 1 else { return }
        let creation: GuestMemfdCreation
        switch GuestMemfdCreation.decode(readable ? bytes : []) {
        case .failure(let e): cseccomp_respond(listener, id, 0, e.code); return
        case .success(let c): creation = c
        }
        let process = ProcFiles.read(ProcFiles.status(tid)).flatMap { ProcStatus(text: $0[...])?.threadGroupID } ?? tid
        created += 1
        let name = "kvm-gmem.\(process).\(created)"
        let value = creation.createValue(name: name)
        let rc = value.withCString { setxattr(mountRoot, GmemXattr.create, $0, strlen($0), 0) }
        guard rc == 0 else { cseccomp_respond(listener, id, 0, errno); return }
        let path = mountRoot + "/" + name
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { let e = errno; unlink(path); cseccomp_respond(listener, id, 0, e); return }
        // The guest view of a file with MMAP, kept (O_PATH: no open handle, so the memory still
        // goes with the caller's last descriptor) for binding memslots: after the unlink no name
        // reaches it.
        var guestView: GuestView?
        if creation.flags & GmemCreateFlag.mmap.bit != 0 {
            let view = cseccomp_open_path(mountRoot + "/.guest/" + name)
            var vst = stat()
            if view >= 0, fstat(view, &vst) == 0 {
                guestView = GuestView(descriptor: view, inode: UInt64(vst.st_ino), size: creation.size)
            } else if view >= 0 {
                close(view)
            }
        }
        unlink(path)
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { cseccomp_respond(listener, id, 0, errno); return }
        registry.register(inode: UInt64(st.st_ino), as: .guestMemfd(mmap: creation.flags & GmemCreateFlag.mmap.bit != 0))
        if let guestView {
            sweepGuestViews()
            guestViews[UInt64(st.st_ino)] = guestView
        }
        // Fails only when the caller is gone; the file then goes with our descriptor.
        _ = cseccomp_add_fd_and_respond(listener, id, fd, 0)
    }

    func install(memfd name: String, as kind: DescriptorKind, cloexec: Bool, id: UInt64) {
        let fd = cseccomp_memfd(name)
        guard fd >= 0 else { cseccomp_respond(listener, id, 0, errno); return }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { cseccomp_respond(listener, id, 0, errno); return }
        registry.register(inode: UInt64(st.st_ino), as: kind)
        _ = cseccomp_add_fd_and_respond(listener, id, fd, cloexec ? UInt32(O_CLOEXEC) : 0)
    }

    // MARK: - Reading the caller

    func kind(_ tid: pid_t, _ fd: Int32) -> DescriptorKind { kindAndInode(tid, fd).kind }

    /// The descriptor's kind and, for one that may be ours, its inode.
    func kindAndInode(_ tid: pid_t, _ fd: Int32) -> (kind: DescriptorKind, inode: UInt64?) {
        guard fd >= 0, let link = ProcFiles.readLink(ProcFiles.fd(tid, fd)) else { return (.other, nil) }
        guard registry.needsInode(link: link) else { return (registry.classify(link: link, inode: nil), nil) }
        let inode = ProcFiles.read(ProcFiles.fdinfo(tid, fd)).flatMap { FDInfo(text: $0[...])?.inode }
        return (registry.classify(link: link, inode: inode), inode)
    }

    func readMemory(_ tid: pid_t, _ address: UInt64, into bytes: inout [UInt8]) -> Bool {
        let count = bytes.count
        return bytes.withUnsafeMutableBytes { cseccomp_read_memory(tid, address, $0.baseAddress, count) } == count
    }

    /// A NUL-terminated string of at most PATH_MAX bytes, read page by page (a read must not
    /// cross into an unmapped page after the string's end).
    func readString(_ tid: pid_t, _ address: UInt64) -> String? {
        var bytes: [UInt8] = []
        var at = address
        while bytes.count < Int(PATH_MAX) {
            let chunk = Int(4096 - at % 4096)
            var buffer = [UInt8](repeating: 0, count: chunk)
            let n = buffer.withUnsafeMutableBytes { cseccomp_read_memory(tid, at, $0.baseAddress, chunk) }
            guard n > 0 else { return nil }
            if let end = buffer[..<n].firstIndex(of: 0) {
                bytes += buffer[..<end]
                return String(decoding: bytes, as: UTF8.self)
            }
            bytes += buffer[..<n]
            at &+= UInt64(n)
        }
        return nil
    }

    func noteOnce(_ note: String) {
        guard printedNotes.insert(note).inserted else { return }
        printError("gmemctl run: " + note)
    }
}
