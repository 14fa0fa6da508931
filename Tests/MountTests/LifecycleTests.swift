import Foundation
import GmemABI
import GmemTestSupport
import LinuxMounts
import Testing

/// Guarantee G10 (docs/security.md): every way a mount ends leaves no dead mount behind.
@Suite(.serialized, .enabled(if: FUSE.available))
struct LifecycleTests {
    /// Waits up to `seconds` for `condition`.
    static func eventually(_ seconds: Double = 5, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while !condition() {
            if Date() > deadline { return false }
            usleep(20_000)
        }
        return true
    }

    /// What fusermount3's auto_unmount helper sees, for a failure message: it unmounts only if
    /// opening the mountpoint fails with ENOTCONN (the daemon's connection is gone).
    static func autoUnmountDiagnostics(_ mnt: String) -> String {
        let fd = open(mnt, O_RDONLY)
        let openResult = fd >= 0 ? "open(mnt) succeeded" : "open(mnt) errno \(errno)"
        if fd >= 0 { close(fd) }
        let helpers = (try? run(["pgrep", "-af", "fusermount3.*\(mnt)"]).output) ?? "?"
        return "\(openResult); helpers: \(helpers.isEmpty ? "none" : helpers)"
    }

    @Test(arguments: [SIGINT, SIGTERM, SIGHUP])
    func signalUnmountsCleanly(_ sig: Int32) throws {
        let m = try GmemMount(["--file", "f:64K:mmap,init-shared"])
        defer { m.unmount() }
        // Leave something in the page cache and an open handle in another process's past.
        #expect(try run(["dd", "if=/dev/zero", "of=\(m.file("f"))", "bs=4096", "count=4", "conv=notrunc", "status=none"]).succeeded)
        #expect(try run(["cat", m.file("f")]).succeeded)
        #expect(m.unmount(signal: sig) == 0, "exit status after signal \(sig)")
        #expect(!GmemMount.isMounted(m.path))
    }

    @Test func crashWithAutoUnmountLeavesNoDeadMount() throws {
        let m = try GmemMount(["--file", "f:64K:mmap,init-shared"])
        defer { m.unmount() }
        // A process holding the file open and mapped while the daemon dies.
        let holder = try Sys.withFD(m.file("f"), O_RDONLY) { fd -> Bool in
            guard let p = mmap(nil, 65536, PROT_READ, MAP_SHARED, fd.rawValue, 0), p != MAP_FAILED else { return false }
            defer { munmap(p, 65536) }
            _ = p.load(as: UInt8.self)
            kill(m.pid, SIGKILL)
            m.process.waitUntilExit()
            // fusermount3's auto_unmount helper notices the closed /dev/fuse fd and unmounts.
            return Self.eventually(20) { !GmemMount.isMounted(m.path) }
        }
        #expect(holder, "mount still in /proc/mounts 20 s after SIGKILL: \(Self.autoUnmountDiagnostics(m.path))")
        #expect(m.unmount() == 128 + SIGKILL)   // the status recorded when it was reaped
    }

    @Test func lazyUnmountWhileFilesAreOpen() throws {
        let m = try GmemMount(["--file", "f:64K:init-shared"])
        defer { m.unmount() }
        // O_CLOEXEC: a child forked meanwhile by a concurrent suite must not keep the file open.
        let fd = open(m.file("f"), O_RDWR | O_CLOEXEC)
        #expect(fd >= 0)
        #expect((try? Sys.pwrite(FileDescriptor(rawValue: fd), Array("still here".utf8), offset: 0)) == 10)
        // A plain unmount is refused while the file is open; a lazy one detaches at once.
        let busy = try run(["fusermount3", "-u", m.path])
        #expect(!busy.succeeded && busy.stderr.contains("busy"))
        #expect(try run(["fusermount3", "-u", "-z", m.path]).succeeded)
        #expect(!GmemMount.isMounted(m.path))
        // The open file keeps working through the daemon until it is closed…
        #expect((try? Sys.pread(FileDescriptor(rawValue: fd), count: 10, offset: 0)) == Array("still here".utf8))
        #expect(m.isAlive)
        close(fd)
        // …then the daemon's loop ends and it exits cleanly by itself.
        #expect(Self.eventually(10) { !m.isAlive }, "daemon still running after the last close")
        #expect(m.unmount() == 0)
    }

    @Test func twoDaemonsOnTwoMountpoints() throws {
        let a = try GmemMount(["--file", "f:64K:init-shared"])
        defer { a.unmount() }
        let b = try GmemMount(["--file", "f:64K:init-shared", "--file", "g:8K"])
        defer { b.unmount() }
        #expect(throws: Never.self) { try Sys.setxattr(a.file("f"), GmemXattr.setAttributes, "0 4096 private") }
        #expect(try Sys.withFD(b.file("f"), O_RDWR) { try Sys.pwrite($0, Array("b".utf8), offset: 0) } == 1)
        // Independent state: a's conversion is not b's, b's write is not a's.
        #expect(throws: Errno.permissionDenied) { try Sys.withFD(a.file("f"), O_RDONLY) { try Sys.pread($0, count: 1, offset: 0) } }
        #expect(try Sys.withFD(b.file("f"), O_RDONLY) { try Sys.pread($0, count: 1, offset: 0) } == Array("b".utf8))
        #expect(access(a.file("g"), F_OK) != 0 && access(b.file("g"), F_OK) == 0)
        // Stopping one leaves the other serving.
        #expect(a.unmount() == 0)
        #expect(!GmemMount.isMounted(a.path) && GmemMount.isMounted(b.path))
        #expect(try Sys.withFD(b.file("f"), O_RDONLY) { try Sys.pread($0, count: 1, offset: 0) } == Array("b".utf8))
        #expect(b.unmount() == 0)
        #expect(!GmemMount.isMounted(b.path))
    }

    /// Without `-f` gmemfs daemonizes and returns only once the mount is live: the file is
    /// usable the moment the command exits, with no polling. Unmounting ends the daemon.
    @Test func daemonModeReturnsOnceMounted() throws {
        let dir = try makeTemporaryDirectory("gmemfs-test")
        let mnt = dir + "/mnt"
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        defer {
            if GmemMount.isMounted(mnt) { _ = try? run(["fusermount3", "-u", "-z", mnt]) }
            try? FileManager.default.removeItem(atPath: dir)
        }
        // system(3), not Foundation's Process: the command forks a daemon that outlives it, and
        // Process was seen to miss the exit of such a command. Output to /dev/null: the daemon and
        // fusermount3's auto_unmount helper keep whatever they inherit.
        let status = system("'\(binDirectory())/gmemfs' -o auto_unmount --file f:64K:init-shared '\(mnt)' >/dev/null 2>&1 </dev/null")
        #expect(status == 0, "gmemfs exited with wait status \(status)")
        #expect(GmemMount.isMounted(mnt), "the mount must be live when gmemfs returns")
        #expect(try Sys.withFD(mnt + "/f", O_RDWR) { try Sys.pwrite($0, Array("up".utf8), offset: 0) } == 2)
        let daemons = try run(["pgrep", "-f", "gmemfs -o auto_unmount --file f:64K:init-shared \(mnt)$"])
        let pid = try #require(daemons.output.split(separator: "\n").first.flatMap { pid_t($0) })
        #expect(try run(["fusermount3", "-u", mnt]).succeeded)
        #expect(Self.eventually(10) { kill(pid, 0) != 0 }, "daemon \(pid) still running after unmount")
    }
    // MARK: - kill -9 right after mounting

    /// Cycles of the fastest start-then-crash: mount, SIGKILL as soon as the mount is listed.
    /// Each must end with the process gone and the mount gone, within deadlines, so that a hang
    /// (a daemon that asked its own mount, or fusermount3's helper that looked too early) fails
    /// the test instead of wedging it. Every failure is cleaned up (`umount -f`, then `-l`).
    static let killCycles = Int(ProcessInfo.processInfo.environment["GMEM_KILL_CYCLES"] ?? "") ?? 50

    /// Unmounts whatever a failed cycle left on `mnt` and ends `pid` if it can be ended: aborts
    /// the FUSE connection first (through fusectl: that frees a process stuck on its own mount),
    /// then detaches the mount lazily. Never touches the mount itself (that could hang).
    static func forceCleanup(_ mnt: String, pid: pid_t) {
        if pid > 0 { kill(pid, SIGKILL) }
        for m in MountInfo.current() ?? [] where m.mountPoint == mnt {
            let abort = open("/sys/fs/fuse/connections/\(m.minor)/abort", O_WRONLY)
            if abort >= 0 { _ = write(abort, "1", 1); close(abort) }
        }
        for argv in [["umount", "-l", mnt], ["fusermount3", "-u", "-z", mnt]] where GmemMount.isMounted(mnt) {
            _ = try? run(argv, timeout: 10)
        }
    }

    /// What a failed cycle left, for the failure message, read from /proc only (opening the
    /// mountpoint could block on a hung connection).
    static func stuckDiagnostics(_ pid: pid_t) -> String {
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? "gone"
        let state = stat.lastIndex(of: ")").map { String(stat[stat.index($0, offsetBy: 2)...].prefix(1)) } ?? stat
        let threads = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []).map { tid in
            let wchan = (try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/wchan", encoding: .utf8)) ?? "?"
            return "\(tid):\(wchan)"
        }
        return "daemon \(pid) state \(state), threads \(threads)"
    }

    /// Whether `pid` is gone or a zombie (its reaper may be slow; the mount check that follows
    /// still catches a process whose threads are stuck).
    static func hasExited(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(close, offsetBy: 2)...].hasPrefix("Z")
    }

    /// The pids whose command line is exactly `argv` (scanning /proc: no pgrep per cycle).
    static func pids(running argv: [String]) -> [pid_t] {
        let wanted = Data(argv.joined(separator: "\0").utf8 + [0])
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { pid_t($0) }.filter { FileManager.default.contents(atPath: "/proc/\($0)/cmdline") == wanted }
    }

    /// How long a killed daemon may take to exit and its mount to go. A hung mount never goes,
    /// so a generous deadline still tells a hang from a slow machine (2 busy cores once needed
    /// more than 5 s for fusermount3's helper to unmount).
    static let killDeadline: TimeInterval = 15

    @Test func killNineRightAfterMountForeground() throws {
        let dir = try makeTemporaryDirectory("gmemfs-kill")
        let mnt = dir + "/mnt"
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        defer { Self.forceCleanup(mnt, pid: 0); try? FileManager.default.removeItem(atPath: dir) }
        var failures: [String] = []
        for cycle in 0..<Self.killCycles {
            let p = try startForegroundGmemfs(["-o", "auto_unmount", "--file", "f:64K", mnt])
            let pid = p.processIdentifier
            guard Self.eventually(10, { GmemMount.isMounted(mnt) || !p.isRunning }), p.isRunning else {
                failures.append("cycle \(cycle): did not mount (running: \(p.isRunning))")
                Self.forceCleanup(mnt, pid: pid)
                break
            }
            kill(pid, SIGKILL)
            let exited = Self.eventually(Self.killDeadline) { !p.isRunning }
            let unmounted = Self.eventually(Self.killDeadline) { !GmemMount.isMounted(mnt) }
            if !exited || !unmounted {
                failures.append("cycle \(cycle): exited \(exited), unmounted \(unmounted): \(Self.stuckDiagnostics(pid))")
                Self.forceCleanup(mnt, pid: pid)
            }
            if Self.eventually(5, { !p.isRunning }) { p.waitUntilExit() }
        }
        #expect(failures.isEmpty, "\(failures.count) of \(Self.killCycles) cycles failed: \(failures)")
    }

    @Test func killNineRightAfterMountDaemonMode() throws {
        let dir = try makeTemporaryDirectory("gmemfs-kill")
        let mnt = dir + "/mnt"
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        defer { Self.forceCleanup(mnt, pid: 0); try? FileManager.default.removeItem(atPath: dir) }
        let argv = [binDirectory() + "/gmemfs", "-o", "auto_unmount", "--file", "f:64K", mnt]
        var failures: [String] = []
        for cycle in 0..<Self.killCycles {
            // Returns once the mount is live; the daemon (a child of init) keeps running.
            // `timeout`: a start that hangs (on a mount left hung) fails the cycle, not the suite.
            let status = system("timeout -s KILL 20 " + argv.map { "'\($0)'" }.joined(separator: " ") + " >/dev/null 2>&1 </dev/null")
            let daemon = Self.pids(running: argv).first ?? 0
            guard status == 0, daemon > 0, GmemMount.isMounted(mnt) else {
                failures.append("cycle \(cycle): start failed (status \(status), daemon \(daemon))")
                Self.forceCleanup(mnt, pid: daemon)
                break
            }
            kill(daemon, SIGKILL)
            let exited = Self.eventually(Self.killDeadline) { Self.hasExited(daemon) }
            let unmounted = Self.eventually(Self.killDeadline) { !GmemMount.isMounted(mnt) }
            if !exited || !unmounted {
                failures.append("cycle \(cycle): exited \(exited), unmounted \(unmounted): \(Self.stuckDiagnostics(daemon))")
                Self.forceCleanup(mnt, pid: daemon)
            }
        }
        #expect(failures.isEmpty, "\(failures.count) of \(Self.killCycles) cycles failed: \(failures)")
    }
}
