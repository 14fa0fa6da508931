import ArgumentParser
import FuseKit
import Glibc
import GmemABI
import GmemCore
import GmemFS
import Logging

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// `gmemfs`: mounts a directory of guest_memfd-like files.
@main
struct GmemfsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gmemfs",
        abstract: "Mount a directory of guest_memfd-like files (private/shared memory of a confidential VM).",
        discussion: """
            Each file has a fixed size, sparse memory and a private/shared attribute
            per 4 KiB page. Host read/write of a private page fails with EACCES and an
            mmap fault on it raises SIGBUS.

            The mount root plays the VM fd:
              setfattr -n user.gmem.create -v "NAME SIZE [FLAGS]" MOUNTPOINT
            A file converts with:
              setfattr -n user.gmem.set_attributes -v "OFFSET SIZE private|shared" FILE
            and shows its map with:
              getfattr --only-values -n user.gmem.attributes FILE
            (also user.gmem.attributes:START-END, user.gmem.flags, user.gmem.stats), or the
            KVM_SET_MEMORY_ATTRIBUTES2 ioctl. See docs/ for the full contract.

            SIGINT, SIGTERM and SIGHUP unmount cleanly.
            """,
        version: "0.1.0")

    @Flag(name: .shortAndLong, help: "Stay in the foreground (default: daemonize once the mount is live).")
    var foreground = false

    @Flag(name: .shortAndLong, help: "Log every FUSE request (libfuse -d) and every conversion; implies --foreground.")
    var debug = false

    @Option(name: .customShort("o"), help: ArgumentHelp(MountOptions.help, valueName: "OPTS"), completion: .list(MountOptions.completions))
    var mountOptions: [String] = []

    @Option(name: .customLong("file"), help: ArgumentHelp(
        "A file to create at mount time; repeatable. SIZE in bytes or with K/M/G/T, a positive multiple of 4096. FLAGS: comma list of mmap, init-shared. Default: gmem:1G:mmap.",
        valueName: "NAME:SIZE[:FLAGS]"), transform: GmemfsCommand.parseFileSpec)
    var files: [CreateRequest] = []

    @Flag(name: .customLong("guest-view"), help: "Also expose MOUNTPOINT/.guest/NAME: the guest's view, which ignores attributes (mode 0600).")
    var guestView = false

    @Flag(name: .customLong("kernel-compat"), help: "Answer as the kernel's guest_memfd wherever FUSE allows: read/write EINVAL, lseek/pread/pwrite ESPIPE, fsync and chmod/chown/touch EINVAL, st_blocks 0.")
    var kernelCompat = false

    @Flag(name: .customLong("no-in-place"), help: "Play a kernel without in-place conversion (module parameter kvm.gmem_in_place_conversion off): KVM_SET_MEMORY_ATTRIBUTES2 fails with ENOTTY and user.gmem.set_attributes with EOPNOTSUPP; everything else is unchanged.")
    var noInPlace = false

    @Option(name: .customLong("max-memory"), parsing: .unconditional, help: ArgumentHelp("Cap on allocated page memory: past it, writes and fallocate fail with ENOSPC and a fault through a mapping gets SIGBUS; 0 means no cap (the default).", valueName: "SIZE"),
            transform: GmemfsCommand.size)
    var maxMemory: UInt64?

    @Option(name: .customLong("log-file"), help: ArgumentHelp(
        "Append the daemon's log here instead of stderr (kept in daemon mode): one line per refused user.gmem.* request or ioctl, with the reason and the requester's pid.",
        valueName: "PATH"), completion: .file())
    var logFile: String?

    @Option(name: .customLong("log-level"), help: ArgumentHelp(
        "Least severe log level written (default info; refusals are notice).", valueName: "LEVEL"))
    var logLevel: Logger.Level?

    @Option(name: .customLong("read-ahead-kb"), parsing: .unconditional, help: ArgumentHelp(
        "Read-ahead window of the mount in KiB (set through sysfs when root; 0 keeps the kernel's 128).", valueName: "KB"))
    var readAheadKB = 1024

    @Option(parsing: .unconditional, help: "Maximum number of request threads.")
    var threads: UInt32 = 16

    @Flag(name: .customLong("exit-with-parent"), help: "Unmount and exit 0 when the process that started gmemfs exits, however it ends (for test runners; as nbdkit's option).")
    var exitWithParent = false

    @Flag(name: .customLong("io-uring"), help: "Serve requests over FUSE-over-io_uring, one ring per CPU (needs the kernel's fuse enable_uring parameter on; otherwise serves /dev/fuse and logs why).")
    var ioUring = false

    @Option(name: .customLong("pid-file"), help: ArgumentHelp(
        "Write the daemon's pid to PATH once the mount is live (before gmemfs returns in daemon mode); removed on a clean exit.", valueName: "PATH"), completion: .file())
    var pidFile: String?

    @Argument(help: ArgumentHelp("Where to mount; with two arguments, the SOURCE.", valueName: "source-or-mountpoint"), completion: .directory)
    var mountpoint: String

    @Argument(help: ArgumentHelp(
        "Where to mount, after a SOURCE: mount(8) and fstab run 'gmemfs SOURCE MOUNTPOINT -o OPTS'. SOURCE becomes the fsname (first field of /proc/mounts; default gmemfs).",
        valueName: "mountpoint"), completion: .directory)
    var mountpointAfterSource: String?

    /// ArgumentParser's entry point, with an option error on one line (its default adds the
    /// whole usage): `Error: MESSAGE (see 'gmemfs --help')`, exit status 64.
    static func main() {
        let command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            let code = exitCode(for: error)
            guard code != .success else { exit(withError: error) }   // --help, --version
            let text = message(for: error).split(separator: "\n").first.map(String.init) ?? "bad arguments"
            let line = Array("Error: \(text) (see 'gmemfs --help')\n".utf8)
            _ = Glibc.write(2, line, line.count)
            Glibc.exit(code.rawValue)
        }
        do {
            var command = command
            try command.run()
        } catch {
            exit(withError: error)
        }
    }

    mutating func validate() throws {
        var source: String?
        if let second = mountpointAfterSource { (source, mountpoint, mountpointAfterSource) = (mountpoint, second, nil) }
        mountOptions = try MountOptions.resolve(&self, source: source)
        pidFile = pidFile.map(Self.absolute)
        guard (0...1_048_576).contains(readAheadKB) else { throw ValidationError("--read-ahead-kb must be between 0 and 1048576") }
        if let maxMemory, maxMemory != 0, maxMemory < 4096 {
            throw ValidationError("--max-memory \(maxMemory) is less than one page (4096 bytes); 0 means no cap")
        }
        if let pidFile {
            // Checked now, not once mounted: the directory must exist and be writable.
            let directory = pidFile.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
            guard access(directory.isEmpty ? "/" : directory, W_OK) == 0 else {
                throw ValidationError("--pid-file \(pidFile): cannot write in \(directory.isEmpty ? "/" : directory): \(String(cString: strerror(errno)))")
            }
        }
        var names = Set<String>()
        for f in files where !names.insert(f.name).inserted {
            throw ValidationError("--file \(f.name) is given twice: each file needs its own name")
        }
        guard threads >= 2 else { throw ValidationError("--threads must be at least 2 (conversions notify the kernel while other threads serve it)") }
    }

    static func size(_ text: String) throws -> UInt64 {
        do { return try parseNumber(text) } catch { throw ValidationError("'\(text)' is not a size") }
    }

    /// `NAME:SIZE[:FLAGS]` (`--file` and `-o file=`), parsed once, when the argument is read.
    static func parseFileSpec(_ spec: String) throws -> CreateRequest {
        let parts = spec.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2 || parts.count == 3 else { throw ValidationError("expected NAME:SIZE[:FLAGS]") }
        do {
            let flags = parts.count == 3 && !parts[2].isEmpty ? try CreateRequest.parseFlags(parts[2]) : []
            return try CreateRequest(name: String(parts[0]), size: try parseNumber(parts[1]), flags: flags)
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// `path` made absolute against the working directory (the daemon later changes to `/`).
    static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        guard let cwd = getcwd(nil, 0) else { return path }
        defer { free(cwd) }
        return String(cString: cwd) + "/" + path
    }

    func run() throws {
        // Everything that can refuse the mount runs first: nothing is logged or allocated for a
        // start that cannot work.
        var (mountpoint, mountpointLock) = try MountpointCheck.resolve(mountpoint)
        defer { if mountpointLock >= 0 { close(mountpointLock) } }   // a start that failed before mounting
        let parentWatch = exitWithParent ? try ParentWatch.open() : nil
        let requests = try files.isEmpty ? [Self.parseFileSpec("gmem:1G:mmap")] : files
        // A daemon whose log goes to the terminal says nothing on success (as sshfs): its info
        // lines would only precede the shell prompt. Refusals (notice) still show until it detaches.
        let daemonToTerminal = !foreground && !debug && logFile == nil
        let level = logLevel ?? (debug ? .debug : daemonToTerminal ? .notice : .info)
        if let logFile {
            // Opened before daemonizing (which sends stdout and stderr to /dev/null).
            let path = Self.absolute(logFile)
            let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw ValidationError("--log-file \(path): \(String(cString: strerror(errno)))") }
            LoggingSystem.bootstrap { label in FileLogHandler(label: label, fd: fd, level: level) }
        } else {
            LoggingSystem.bootstrap { label in
                var h = StreamLogHandler.standardError(label: label)
                h.logLevel = level
                return h
            }
        }
        let logger = Logger(label: "gmemfs")
        let notifier = Notifier()
        var options = GmemOptions(guestView: guestView, maxMemory: maxMemory == 0 ? nil : maxMemory,
                                  fidelity: kernelCompat ? .kernel : .tools)
        options.mountpoint = mountpoint
        options.inPlaceConversion = noInPlace ? .disabled : .enabled
        let fs = GmemFilesystem(options: options, notifier: notifier, logger: logger)
        // noexec: the kernel refuses executable mappings of a guest_memfd (mmap PROT_EXEC is
        // EPERM, mprotect to PROT_EXEC EACCES); a later "-o exec" overrides it.
        let mountOptions = ["default_permissions", "noexec", "fsname=gmemfs", "subtype=" + GmemFileSystem.subtype] + self.mountOptions
        let session = try Session(filesystem: fs, notifier: notifier, options: mountOptions, debug: debug)
        try session.mount(at: mountpoint)
        close(mountpointLock)   // a gmemfs waiting for it now sees this mount
        mountpointLock = -1
        // The files are made once the mount is up (no request is served before `run`), so that
        // a mount that fails logs no "created" line.
        for r in requests {
            do { try fs.createFile(r) } catch {
                session.unmount()
                throw MountRefusal(description: "cannot create \(r.name): \(error)")
            }
        }
        logger.info("mounted on \(mountpoint)")
        let pidFile = self.pidFile
        let ready = { pidFile.map { PidFile.write($0, logger: logger) } ?? true }
        if !foreground && !debug {
            guard session.daemonize(ready: ready) else { throw ExitCode.failure }
        } else {
            guard ready() else { throw ExitCode.failure }
        }
        defer { if let pidFile { unlink(pidFile) } }
        if let parentWatch, !ParentWatch.start(parentWatch) {
            session.unmount()
            throw MountRefusal(description: "--exit-with-parent: cannot start the watching thread")
        }
        if readAheadKB > 0 {
            session.setReadAhead(kilobytes: readAheadKB, mountpoint: mountpoint) { ok in
                if !ok { logger.debug("read-ahead not changed (needs root and sysfs)") }
            }
        }
        let rc = session.run(maxThreads: threads, transport: ioUring ? .ioUring : .classic)
        session.unmount()
        logger.info("unmounted \(mountpoint)")
        if rc != 0 { throw ExitCode(rc) }
    }
}
