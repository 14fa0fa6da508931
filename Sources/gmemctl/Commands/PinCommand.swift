import ArgumentParser
import CLinuxSys
import Glibc
import GmemABI

/// `gmemctl pin FILE OFFSET SIZE [-- COMMAND...]`: holds a page reference while COMMAND runs,
/// or until SIGINT/SIGTERM/SIGHUP.
struct PinCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pin",
        abstract: "Hold references on a range (as a DMA pin would) while a command runs, or until Ctrl-C.",
        discussion: """
            Takes one reference on each page of [OFFSET, OFFSET+SIZE) with the
            GMEM_PIN_PAGES ioctl (0x40404701). While it is held, converting any of those
            pages to private fails with EAGAIN (the ioctl, with the first referenced
            page in error_offset) or EBUSY (the xattr); converting to shared is not
            affected. The pages must be shared.

            With COMMAND, runs it and exits with its status (128+N if signal N killed
            it); SIGINT, SIGTERM and SIGHUP received meanwhile are passed on to it.
            Without COMMAND, waits for one of those signals and exits 0. The reference
            is dropped at the end (GMEM_UNPIN_PAGES), and by the daemon if gmemctl dies:
            it belongs to gmemctl's open file, which COMMAND does not inherit.

            Example:
              gmemctl pin /mnt/gmem/demo 0 4K -- \\
                gmemctl convert private /mnt/gmem/demo 0 16K
            """)

    @Argument(help: "The gmem file.", completion: .file()) var file: String
    @Argument(help: "Byte offset (multiple of 4096).") var offset: String
    @Argument(help: "Byte count (positive multiple of 4096).") var size: String
    @Argument(parsing: .postTerminator, help: "The command to run while the pages are pinned (after --).", completion: .shellCommand("compgen -c")) var command: [String] = []

    static let hints: [Int32: String] = [
        EFAULT: "a page in the range is private; only shared pages can be pinned",
        EINVAL: "the daemon refused the range (offset and size multiples of 4096, size non-zero, inside the file)",
        ENOMEM: "a page already carries the most references one open file may hold (\(GmemLimit.referencesPerPageMax))",
        ENOTTY: "the file does not answer GMEM_PIN_PAGES: not a gmem file, or an older gmemfs",
    ]

    func run() throws {
        let (o, s, end) = try Input.fileRange(file, offset: offset, size: size)
        // The reference belongs to this open file description: close-on-exec keeps COMMAND from
        // sharing it (and so from keeping the pages pinned after gmemctl is gone).
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open \(file)") }
        defer { close(fd) }
        // Signals are taken synchronously (sigtimedwait) from here on.
        var signals = sigset_t()
        sigemptyset(&signals)
        for sig in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&signals, sig) }
        var previous = sigset_t()
        pthread_sigmask(SIG_BLOCK, &signals, &previous)
        try PageReferenceIoctl.call(PageReferenceIoctl.pin, fd: fd, offset: o, size: s, path: file, hints: Self.hints)
        let range = "[\(Units.hex(o)), \(Units.hex(end))) (\(s / 4096) page\(s == 4096 ? "" : "s"))"
        printError("gmemctl: \(file): \(range) pinned" + (command.isEmpty ? "; waiting for Ctrl-C or SIGTERM" : ""))
        let status: Int32
        if command.isEmpty {
            var sig: Int32 = 0
            while sigwait(&signals, &sig) != 0 {}
            status = ExitStatus.success
        } else {
            do {
                status = try runCommand(mask: previous, forwarding: signals)
            } catch {
                try? PageReferenceIoctl.call(PageReferenceIoctl.unpin, fd: fd, offset: o, size: s, path: file)
                throw error
            }
        }
        try PageReferenceIoctl.call(PageReferenceIoctl.unpin, fd: fd, offset: o, size: s, path: file)
        printError("gmemctl: \(file): \(range) unpinned")
        if status != ExitStatus.success { throw ExitCode(status) }
    }

    /// Spawns `command` with the signal mask gmemctl started with, tied to this thread (it gets
    /// SIGKILL if gmemctl is killed: no command outlives the pin), passes on the signals in
    /// `forwarding`, and returns its exit status (128+N for signal N).
    func runCommand(mask: sigset_t, forwarding signals: sigset_t) throws -> Int32 {
        var mask = mask, signals = signals
        let argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let pid = clinux_spawn_tied(argv, &mask)
        guard pid > 0 else { throw SystemError("cannot run \(command[0])", errno: -pid) }
        var timeout = timespec(tv_sec: 0, tv_nsec: 50_000_000)
        while true {
            var st: Int32 = 0
            if waitpid(pid, &st, WNOHANG) == pid {
                let signaled = st & 0x7f
                return signaled == 0 ? (st >> 8) & 0xff : 128 + signaled
            }
            var info = siginfo_t()
            let sig = sigtimedwait(&signals, &info, &timeout)
            if sig > 0 { kill(pid, sig) }
        }
    }
}

