import Foundation
import GmemTestSupport
import Testing

/// Issue 5 §4: every way a mount ends leaves no dead mount behind.
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
            guard let p = mmap(nil, 65536, PROT_READ, MAP_SHARED, fd, 0), p != MAP_FAILED else { return false }
            defer { munmap(p, 65536) }
            _ = p.load(as: UInt8.self)
            kill(m.pid, SIGKILL)
            m.process.waitUntilExit()
            // fusermount3's auto_unmount helper notices the closed /dev/fuse fd and unmounts.
            return Self.eventually(20) { !GmemMount.isMounted(m.path) }
        }
        #expect(holder, "mount still in /proc/mounts 20 s after SIGKILL")
        #expect(m.process.terminationReason == .uncaughtSignal && m.process.terminationStatus == SIGKILL)
    }

    @Test func lazyUnmountWhileFilesAreOpen() throws {
        let m = try GmemMount(["--file", "f:64K:init-shared"])
        defer { m.unmount() }
        let fd = open(m.file("f"), O_RDWR)
        #expect(fd >= 0)
        #expect(Sys.pwrite(fd, Array("still here".utf8), offset: 0) == .success(10))
        // A plain unmount is refused while the file is open; a lazy one detaches at once.
        let busy = try run(["fusermount3", "-u", m.path])
        #expect(!busy.succeeded && busy.stderr.contains("busy"))
        #expect(try run(["fusermount3", "-u", "-z", m.path]).succeeded)
        #expect(!GmemMount.isMounted(m.path))
        // The open file keeps working through the daemon until it is closed…
        #expect(Sys.pread(fd, count: 10, offset: 0) == .success(Array("still here".utf8)))
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
        #expect(Sys.setxattr(a.file("f"), "user.gmem.set_attributes", "0 4096 private") == 0)
        #expect(try Sys.withFD(b.file("f"), O_RDWR) { Sys.pwrite($0, Array("b".utf8), offset: 0) } == .success(1))
        // Independent state: a's conversion is not b's, b's write is not a's.
        #expect(try Sys.withFD(a.file("f"), O_RDONLY) { Sys.pread($0, count: 1, offset: 0) } == .failure(Sys.Errno(EACCES)))
        #expect(try Sys.withFD(b.file("f"), O_RDONLY) { Sys.pread($0, count: 1, offset: 0) } == .success(Array("b".utf8)))
        #expect(access(a.file("g"), F_OK) != 0 && access(b.file("g"), F_OK) == 0)
        // Stopping one leaves the other serving.
        #expect(a.unmount() == 0)
        #expect(!GmemMount.isMounted(a.path) && GmemMount.isMounted(b.path))
        #expect(try Sys.withFD(b.file("f"), O_RDONLY) { Sys.pread($0, count: 1, offset: 0) } == .success(Array("b".utf8)))
        #expect(b.unmount() == 0)
        #expect(!GmemMount.isMounted(b.path))
    }
}
