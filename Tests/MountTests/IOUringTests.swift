import Foundation
import GmemABI
import GmemTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The kernel's switch for FUSE over io_uring, `/sys/module/fuse/parameters/enable_uring`.
/// Tests that change it restore it in every path.
enum URingParameter {
    static let path = "/sys/module/fuse/parameters/enable_uring"
    static var exists: Bool { access(path, F_OK) == 0 }
    static var value: String? { (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) }
    /// Whether a test may turn it on: root, and a kernel that has it.
    static var settable: Bool { exists && getuid() == 0 }

    /// Runs `body` with the parameter set to `value` ("Y" or "N"), then restores it.
    static func with<T>(_ value: String, _ body: () throws -> T) throws -> T {
        let old = self.value ?? "N"
        try set(value)
        defer { try? set(old) }
        return try body()
    }

    static func set(_ value: String) throws {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw HarnessError("open \(path): errno \(errno)") }
        defer { close(fd) }
        let text = Array((value + "\n").utf8)
        guard Glibc.write(fd, text, text.count) == text.count else { throw HarnessError("write \(path): errno \(errno)") }
    }
}

/// `-o io_uring` (docs/fuse-kernel-notes.md, "FUSE over io_uring"): served over the rings when
/// the kernel allows it, classically with one log line saying why otherwise, no starvation by
/// parked requests, no hang on a ring thread that invalidates. The whole mount suite also runs
/// on this transport with `GMEM_TRANSPORT=io_uring` (docs/testing.md, "Transports").
@Suite(.serialized, .enabled(if: FUSE.available))
struct IOUringTests {
    static let servingLine = "io_uring: serving over"
    static let fallbackLine = "io_uring not used, serving /dev/fuse classically"

    /// The lines of `log` that contain `text`.
    static func lines(_ log: String, containing text: String) -> [Substring] {
        log.split(separator: "\n").filter { $0.contains(text) }
    }

    /// A log file that outlives its ``GmemMount`` (whose directory goes at unmount).
    static func logFile() throws -> String { try makeTemporaryDirectory("gmemfs-uring-log") + "/log" }

    static func read(_ path: String) -> String {
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        return (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }

    /// The requests the rings served, from the daemon's last log line about them (nil if none).
    static func servedOverRings(_ log: String) -> Int? {
        guard let line = lines(log, containing: "requests served over the rings").last,
              let n = line.split(separator: " ").dropLast(5).last else { return nil }
        return Int(n)
    }

    @Test(.enabled(if: URingParameter.settable, "needs root and a kernel with /sys/module/fuse/parameters/enable_uring"))
    func servesOverTheRings() throws {
        try URingParameter.with("Y") {
            let logPath = try Self.logFile()
            let m = try GmemMount(["-o", "io_uring", "--log-file", logPath, "--guest-view", "--file", "f:64K:mmap,init-shared", "--file", "d:64K:init-shared"])
            defer { m.unmount() }
            // Buffered and direct reads and writes, xattrs, a conversion each way, readdir.
            #expect(try run(["dd", "if=/dev/urandom", "of=\(m.file("f"))", "bs=4096", "count=16", "conv=notrunc", "status=none"]).succeeded)
            #expect(try run(["dd", "if=\(m.file("d"))", "of=/dev/null", "bs=4096", "count=16", "iflag=direct", "status=none"]).succeeded)
            #expect(try contents(m.file("f"), count: 65536) == contents(m.guest("f"), count: 65536))
            try convert(m.file("f"), "0 8192 private")
            #expect(attributes(m.file("f")).hasPrefix("0-2000 private"))
            #expect(throws: Errno.permissionDenied) { try contents(m.file("f"), count: 4096) }
            try convert(m.file("f"), "0 8192 shared")
            let names = try FileManager.default.contentsOfDirectory(atPath: m.path)
            #expect(names.contains("d") && names.contains("f"), "\(names)")
            #expect(m.unmount() == 0)
            let log = Self.read(logPath)
            #expect(Self.lines(log, containing: Self.servingLine).count == 1, "\(log)")
            #expect(Self.lines(log, containing: Self.fallbackLine).isEmpty, "\(log)")
            let served = Self.servedOverRings(log) ?? 0
            #expect(served > 20, "\(log)")
        }
    }

    @Test(.enabled(if: URingParameter.settable && !TestTransport.isIOUring,
                   "needs root and enable_uring, and a classic run: the io_uring run keeps enable_uring on for every mount"))
    func fallsBackWithOneLineWhenTheParameterIsOff() throws {
        try URingParameter.with("N") {
            let logPath = try Self.logFile()
            let m = try GmemMount(["--io-uring", "--log-file", logPath, "--file", "f:64K:init-shared"])
            defer { m.unmount() }
            #expect(try contents(m.file("f"), count: 4096).count == 4096)
            try convert(m.file("f"), "0 4096 private")
            #expect(m.unmount() == 0)
            let log = Self.read(logPath)
            let fallback = Self.lines(log, containing: Self.fallbackLine)
            #expect(fallback.count == 1, "\(log)")
            #expect(fallback.first?.contains("enable_uring is N") == true, "\(log)")
            #expect(Self.lines(log, containing: Self.servingLine).isEmpty)
            #expect(Self.servedOverRings(log) == nil, "\(log)")
        }
    }

    /// Readers parked in `.trace` each hold an entry of their CPU's queue until an event comes.
    /// Twenty-four of them on CPU 0 (more than a queue's 16 entries at start), and requests
    /// from CPU 0 are still served: the queue registers more entries.
    @Test(.enabled(if: URingParameter.settable, "needs root and a kernel with /sys/module/fuse/parameters/enable_uring"))
    func parkedReadersDoNotStarveTheirCPU() throws {
        try URingParameter.with("Y") {
            let m = try GmemMount(["-o", "io_uring", "--file", "f:64K:init-shared"])
            defer { m.unmount() }
            let readers = try (0..<24).map { _ in try TraceReader(m, ["taskset", "-c", "0", "cat", "\(m.path)/.trace"]) }
            let script = """
                set -e
                for i in 1 2 3 4 5 6 7 8; do
                    dd if=\(m.file("f")) of=/dev/null bs=4096 count=16 iflag=direct status=none
                    setfattr -n \(GmemXattr.setAttributes) -v "0 4096 private" \(m.file("f"))
                    setfattr -n \(GmemXattr.setAttributes) -v "0 4096 shared" \(m.file("f"))
                    getfattr --only-values -n \(GmemXattr.attributes) \(m.file("f")) > /dev/null
                done
                """
            // The timeout only detects a hang: served, this takes milliseconds.
            let r = try run(["taskset", "-c", "0", "sh", "-c", script], timeout: 60)
            #expect(r.succeeded, "\(r)")
            for reader in readers {
                #expect(reader.wait { TraceTests.find($0, file: "f", event: "convert") != nil }, "\(reader.text)")
            }
            readers.forEach { $0.stop() }
            #expect(m.unmount() == 0)
        }
    }

    /// A ring thread that invalidates must keep serving: the invalidation writes dirty mmap
    /// pages back (WRITE requests on the same CPU's queue) before it returns. A guest read of
    /// pages the host dirtied through its mapping, then a conversion of them, from one CPU.
    @Test(.enabled(if: URingParameter.settable, "needs root and a kernel with /sys/module/fuse/parameters/enable_uring"))
    func invalidationOnARingThreadDoesNotHang() throws {
        try URingParameter.with("Y") {
            let m = try GmemMount(["-o", "io_uring", "--guest-view", "--file", "f:64K:mmap,init-shared"])
            defer { m.unmount() }
            let script = """
                import mmap, os, sys
                os.sched_setaffinity(0, {0})
                host, guest, name = sys.argv[1], sys.argv[2], sys.argv[3]
                fd = os.open(host, os.O_RDWR)
                mm = mmap.mmap(fd, 65536, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
                for round in range(20):
                    data = bytes([round + 1]) * 65536
                    mm[:] = data
                    g = os.open(guest, os.O_RDONLY)
                    seen = os.pread(g, 65536, 0)
                    os.close(g)
                    assert seen == data, f"round {round}: the guest saw {seen[:8]!r}"
                    os.setxattr(host, name, b"0 65536 private")
                    os.setxattr(host, name, b"0 65536 shared")
                print("ok")
                """
            let r = try Python.run(script, [m.file("f"), m.guest("f"), GmemXattr.setAttributes], timeout: 60)
            #expect(r.succeeded && r.output.contains("ok"), "\(r) \(r.output)")
            #expect(m.unmount() == 0)
        }
    }

    /// SIGKILL with the rings in use: no hang, and auto_unmount still removes the mount.
    @Test(.enabled(if: URingParameter.settable, "needs root and a kernel with /sys/module/fuse/parameters/enable_uring"))
    func sigkillLeavesNoMount() throws {
        try URingParameter.with("Y") {
            for _ in 0..<5 {
                let m = try GmemMount(["-o", "io_uring", "--file", "f:64K:mmap,init-shared"])
                defer { m.unmount() }
                let reader = try TraceReader(m)   // a parked ring request at the time of death
                #expect(try contents(m.file("f"), count: 4096).count == 4096)
                kill(m.pid, SIGKILL)
                m.process.waitUntilExit()
                #expect(LifecycleTests.eventually(20) { !GmemMount.isMounted(m.path) }, "mount left after SIGKILL")
                #expect(LifecycleTests.eventually(20) { !reader.process.isRunning }, "the parked reader did not end")
            }
        }
    }
}
