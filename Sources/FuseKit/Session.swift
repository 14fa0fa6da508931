import CFuse
import Glibc
import LinuxMounts
import Locking
import SystemPackage

/// Sends kernel cache invalidations for a session (`fuse_lowlevel_notify_inval_inode`).
///
/// Contract (docs/fuse-kernel-notes.md, "Invalidation"): call it with **no lock held that a READ
/// or WRITE handler may need**, and never from the only session thread: the kernel waits for
/// page locks whose READs the daemon must still be able to serve, and dirty mmap pages are
/// written back (WRITE requests arrive on other threads) while the call is in progress.
///
/// Under the io_uring transport a handler runs on its CPU's ring thread, which must keep its
/// ring going while the kernel waits: called there, the invalidation runs on a worker while the
/// ring thread serves (docs/fuse-kernel-notes.md, "FUSE over io_uring").
///
/// The session is attached by `Session.init` and detached before the session is destroyed:
/// an invalidation after that (or before any session) does nothing. Invalidations in flight
/// hold the session's lock shared, so detaching waits for them and they never touch a destroyed
/// session (or transport).
public final class Notifier: Sendable {
    private struct Attached: @unchecked Sendable {
        var session: OpaquePointer?
        var uring: UnsafeMutablePointer<cfuse_uring>?
    }
    private let session = RWLocked(Attached())

    public init() {}

    fileprivate func attach(_ se: OpaquePointer?) {
        session.withWriteLock { $0 = Attached(session: se) }
    }

    fileprivate func attach(uring: UnsafeMutablePointer<cfuse_uring>?) {
        session.withWriteLock { $0.uring = uring }
    }

    /// Drops the kernel's cached pages of `inode` in `[offset, offset + length)` and unmaps them
    /// from every process; returns once that is done. A length of 0 means "to the end".
    /// Errors that only mean "nothing to invalidate" (the kernel never looked the inode up, or the
    /// file system is being unmounted: ENOENT, EBADF, ENODEV) are not reported.
    @discardableResult
    public func invalidate(inode: InodeNumber, offset: Int, length: Int) -> Errno? {
        session.withReadLock { attached -> Errno? in
            guard let se = attached.session else { return nil }
            var rc: Int32 = 0
            // Attributes only (a negative offset): the kernel touches no page, so it cannot
            // wait for a request, and a ring thread may call it directly.
            UringTransport.callOffRing(offset < 0 ? nil : attached.uring) { rc = fuse_lowlevel_notify_inval_inode(se, inode.rawValue, offset, length) }
            if rc == 0 || [ENOENT, EBADF, ENODEV].contains(-rc) { return nil }
            return Errno(rawValue: -rc)
        }
    }
}

public struct FuseError: Error, CustomStringConvertible {
    public let description: String
}

/// A libfuse low-level session: new → mount → (daemonize) → run → unmount, torn down on deinit.
public final class Session: @unchecked Sendable {
    private let se: OpaquePointer
    private let box: Unmanaged<FilesystemBox>
    private let notifier: Notifier
    private var mounted = false
    private var highDeviceFD: Int32 = -1
    private var uring: UringTransport?
    private var mountpoint: String?
    private let autoUnmount: Bool
    private var deathWatcher: Int32?

    /// - Parameters:
    ///   - options: `-o` options for libfuse (e.g. `allow_other`, `auto_unmount`, `default_permissions`).
    ///   - debug: libfuse's `-d` (prints every request).
    public init(filesystem: any LowLevelFilesystem, notifier: Notifier, options: [String], debug: Bool) throws {
        autoUnmount = options.contains("auto_unmount")
        var argv: [String] = ["gmemfs"]
        if debug { argv.append("-d") }
        for o in options where !o.isEmpty { argv += ["-o", o] }
        var cargs = argv.map { strdup($0) }
        defer { cargs.forEach { free($0) } }
        var args = cfuse_args_init(Int32(cargs.count), &cargs)
        box = Unmanaged.passRetained(FilesystemBox(filesystem))
        var ops = operations
        guard let s = fuse_session_new(&args, &ops, MemoryLayout<fuse_lowlevel_ops>.size, box.toOpaque()) else {
            box.release()
            fuse_opt_free_args(&args)
            throw FuseError(description: "fuse_session_new failed (bad -o option?)")
        }
        fuse_opt_free_args(&args)
        se = s
        self.notifier = notifier
        notifier.attach(s)
    }

    /// Mounts the session. The kernel starts sending requests once `run` is called.
    public func mount(at mountpoint: String) throws {
        // Handlers first: once the mount is visible a SIGTERM must already mean "clean exit"
        // (the loop then returns at once), not the default action.
        guard installSignalHandlers() else { throw FuseError(description: "cannot install signal handlers") }
        guard fuse_session_mount(se, mountpoint) == 0 else {
            throw FuseError(description: "cannot mount on \(mountpoint)")
        }
        mounted = true
        self.mountpoint = mountpoint
        keepDeviceOpenLast()
    }

    /// Holds a duplicate of the `/dev/fuse` fd at the highest free descriptor number.
    ///
    /// Why: with `auto_unmount`, fusermount3 leaves a helper that unmounts once the daemon's end
    /// of a socket closes, but only if the mount is dead by then (opening it fails with
    /// ENOTCONN). A killed process closes its descriptors in ascending order and the kernel
    /// releases the files in the reverse order; when `/dev/fuse` is released after the socket,
    /// the helper can look while the connection still stands and leave a dead mount behind.
    /// The last reference to `/dev/fuse` at a number above the socket's makes the connection
    /// end first (docs/security.md, G10).
    private func keepDeviceOpenLast() {
        let fd = fuse_session_fd(se)
        guard fd >= 0 else { return }
        var limit = rlimit()
        let top = getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 ? Int32(clamping: min(limit.rlim_cur, 1 << 20)) : 1024
        for floor in [top - 1, top / 2, 64] where floor > fd {
            let high = fcntl(fd, F_DUPFD_CLOEXEC, floor)
            if high >= 0 { highDeviceFD = high; return }
        }
    }

    /// Detaches from the terminal (as `fuse_daemonize`: fork, setsid, chdir `/`, stdio to
    /// /dev/null). Call after `mount`, before `run`, so that the parent returns only once the
    /// mount is live.
    ///
    /// `ready` runs in the child before the parent exits (e.g. to write a pid file) and may still
    /// print to the caller's stderr. The parent exits 0 once `ready` returned true, 1 if it
    /// returned false or the child died first; the child then gets `false` and must stop.
    public func daemonize(ready: () -> Bool = { true }) -> Bool {
        var waiter: [Int32] = [-1, -1]
        guard pipe(&waiter) == 0 else { return false }
        switch fork() {
        case -1:
            close(waiter[0]); close(waiter[1])
            return false
        case 0:
            close(waiter[0])
            defer { close(waiter[1]) }
            setsid()
            _ = chdir("/")
            guard ready() else { return false }
            let null = open("/dev/null", O_RDWR)
            if null >= 0 {
                for fd in Int32(0)...2 { dup2(null, fd) }
                if null > 2 { close(null) }
            }
            var done: UInt8 = 1
            return Glibc.write(waiter[1], &done, 1) == 1
        default:
            close(waiter[1])
            var done: UInt8 = 0
            let n = read(waiter[0], &done, 1)
            _exit(n == 1 ? 0 : 1)
        }
    }

    /// Sets the mount's read-ahead window (`/sys/class/bdi/MAJ:MIN/read_ahead_kb`) while the
    /// kernel's INIT request is served. The kernel's default of 128 KiB caps buffered READs at
    /// 128 KiB; 1024 lets sequential reads arrive in 1 MiB requests (docs/fuse-kernel-notes.md, "Read-ahead").
    ///
    /// Contract: call after `mount`, before `run`; `mountpoint` is the resolved absolute path
    /// passed to `mount`. The bdi is found in `/proc/self/mountinfo`, never by a request to
    /// the mount itself (a daemon killed while serving its own request cannot exit). The INIT
    /// reply lowers the window to its `max_readahead`, so both are set: sysfs first, then the
    /// reply. Needs root; without it, or without sysfs, the window stays 128 KiB and `done`
    /// gets false. `done` runs on the thread serving INIT.
    public func setReadAhead(kilobytes: Int, mountpoint: String, done: @escaping @Sendable (Bool) -> Void = { _ in }) {
        box.takeUnretainedValue().initHook = { conn in
            guard kilobytes > 0, kilobytes <= Int(UInt32.max / 1024),
                  let mounts = MountInfo.current(),
                  let m = MountInfo.mount(at: mountpoint, in: mounts), m.isFUSE else { return done(false) }
            let fd = open(m.readAheadPath, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { return done(false) }
            defer { close(fd) }
            let text = Array("\(kilobytes)\n".utf8)
            guard Glibc.write(fd, text, text.count) == text.count else { return done(false) }
            conn.pointee.max_readahead = UInt32(kilobytes * 1024)
            done(true)
        }
    }

    /// Serves requests on a multi-threaded loop until SIGINT, SIGTERM or SIGHUP, or unmount.
    /// Returns 0 for a clean exit.
    ///
    /// With `.ioUring` the loop still serves `/dev/fuse` (INIT, FORGET, INTERRUPT, and every
    /// request when io_uring falls back); the rings serve the rest. Call after any fork
    /// (``daemonize(ready:)``): the ring threads start here.
    public func run(maxThreads: UInt32 = 16, transport: Transport = .classic) -> Int32 {
        guard installSignalHandlers() else { return 1 }
        if transport == .ioUring, uring == nil {
            // The watcher first: forked before the rings exist, it maps none of them.
            if autoUnmount, let mountpoint {
                deathWatcher = UringTransport.watchDeath(mountpoint: mountpoint)
                if deathWatcher == nil { FuseKitLog.logger.warning("io_uring: cannot fork the death watcher: a killed daemon may leave a dead mount") }
            }
            if let u = UringTransport.start(session: se, box: box.takeUnretainedValue()) {
                uring = u
                notifier.attach(uring: u.raw)
            }
        }
        defer { fuse_remove_signal_handlers(se); signalsInstalled = false }
        let cfg = fuse_loop_cfg_create()
        defer { fuse_loop_cfg_destroy(cfg) }
        fuse_loop_cfg_set_max_threads(cfg, maxThreads)
        fuse_loop_cfg_set_clone_fd(cfg, 0)
        let rc = fuse_session_loop_mt(se, cfg)
        box.takeUnretainedValue().fs.sessionEnding()
        uring?.drainCommits()   // what sessionEnding answered goes out before the unmount
        // The loop returns the signal number for a signal-driven exit: that is a clean stop.
        return [0, SIGINT, SIGTERM, SIGHUP].contains(rc) ? 0 : rc
    }

    private var signalsInstalled = false

    /// Makes SIGINT, SIGTERM and SIGHUP stop the loop cleanly. Signals may arrive blocked or
    /// ignored (Swift test runners, `cmd &` in scripts), and fuse_set_signal_handlers only
    /// replaces SIG_DFL handlers: reset them, install libfuse's handlers, and only then unblock
    /// (a signal pending while blocked would otherwise take the default action and kill us).
    private func installSignalHandlers() -> Bool {
        if signalsInstalled { return true }
        var set = sigset_t()
        sigemptyset(&set)
        for s in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&set, s); signal(s, SIG_DFL) }
        guard fuse_set_signal_handlers(se) == 0 else { return false }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        signalsInstalled = true
        return true
    }

    public func unmount() {
        if mounted { fuse_session_unmount(se); mounted = false }
        if let uring {
            // Ring threads leave their loops first: an invalidation a ring thread runs off the
            // ring then returns, so detaching (which waits for invalidations) cannot hang.
            uring.beginStop()
            notifier.attach(uring: nil)
            box.takeUnretainedValue().uring = nil
            let served = uring.finishStop()
            self.uring = nil
            FuseKitLog.logger.info("io_uring: \(served) requests served over the rings")
        }
        if let deathWatcher { UringTransport.cleanStop(watcher: deathWatcher); self.deathWatcher = nil }
        if highDeviceFD >= 0 { close(highDeviceFD); highDeviceFD = -1 }
    }

    deinit {
        unmount()
        notifier.attach(nil)   // waits for invalidations in flight
        fuse_session_destroy(se)
        box.release()
    }
}
