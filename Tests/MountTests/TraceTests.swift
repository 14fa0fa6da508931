import Foundation
import GmemABI
import GmemTestSupport
import SystemPackage
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A command that reads `MOUNTPOINT/.trace` in the background (by default `cat`), its output
/// going to a file the test polls.
final class TraceReader {
    let process = Process()
    let outputPath: String

    /// Starts `argv` (default: `cat TRACE`) and waits until it has the trace open, so that
    /// every event after `init` returns reaches it.
    init(_ m: GmemMount, _ argv: [String]? = nil) throws {
        outputPath = try makeTemporaryDirectory("gmemfs-trace") + "/out"
        guard FileManager.default.createFile(atPath: outputPath, contents: nil),
              let out = FileHandle(forWritingAtPath: outputPath) else { throw HarnessError("cannot create \(outputPath)") }
        defer { try? out.close() }
        let argv = argv ?? ["cat", "\(m.path)/.trace"]
        process.executableURL = URL(fileURLWithPath: findExecutable(argv[0]) ?? argv[0])
        process.arguments = Array(argv.dropFirst())
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let deadline = Date().addingTimeInterval(10)
        while !Self.hasOpen("\(m.path)/.trace", pid: process.processIdentifier) {
            guard process.isRunning, Date() < deadline else { stop(); throw HarnessError("the reader did not open .trace: \(text)") }
            usleep(5_000)
        }
    }

    deinit { stop() }

    /// Whether process `pid` (or one of its children: `setpriv` execs, `timeout` forks) has `path` open.
    static func hasOpen(_ path: String, pid: pid_t) -> Bool {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
        return fds.contains { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)")) == path }
    }

    var text: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }
    /// Lines split into fields.
    var lines: [[String]] { text.split(separator: "\n").map { $0.split(separator: " ").map(String.init) } }

    /// Waits (up to `timeout` seconds) until `done(lines)` holds; returns whether it did.
    @discardableResult
    func wait(timeout: TimeInterval = 10, until done: ([[String]]) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if done(lines) { return true }
            usleep(10_000)
        }
        return done(lines)
    }

    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGCONT)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

/// `MOUNTPOINT/.trace`, read with `cat` as the kernel's trace_pipe (docs/trace.md).
@Suite(.serialized, .enabled(if: FUSE.available))
struct TraceTests {
    /// Line fields: TIME FILE EVENT START-END PID COMM OUTCOME DURATION [DETAIL...]
    static func find(_ lines: [[String]], file: String, event: String, range: String? = nil, outcome: String? = nil) -> [String]? {
        lines.first { l in
            l.count >= 8 && l[1] == file && l[2] == event && (range == nil || l[3] == range) && (outcome == nil || l[6] == outcome)
        }
    }

    /// The issue's "done when": another process's `cat` of a private page shows up with its pid,
    /// the file, the offset and EACCES.
    @Test func refusedReadNamesTheReader() throws {
        let m = try GmemMount(["--file", "f:16K"])
        defer { m.unmount() }
        let reader = try TraceReader(m)
        let cat = Process()
        cat.executableURL = URL(fileURLWithPath: findExecutable("cat")!)
        cat.arguments = [m.file("f")]
        cat.standardOutput = FileHandle.nullDevice
        cat.standardError = FileHandle.nullDevice
        try cat.run()
        cat.waitUntilExit()
        #expect(cat.terminationStatus == 1)   // cat: f: Permission denied
        let pid = String(cat.processIdentifier)
        #expect(reader.wait { Self.find($0, file: "f", event: "read-refused") != nil }, "\(reader.text)")
        let line = try #require(Self.find(reader.lines, file: "f", event: "read-refused"), "\(reader.text)")
        #expect(line[3].hasPrefix("0-"))
        #expect(line[4] == pid && line[5] == "cat" && line[6] == "EACCES", "\(line)")
        #expect(Double(line[0]) != nil && line[7] == "-")
        #expect(m.unmount() == 0)
    }

    /// Every kind of event, with its outcome, range, duration and detail.
    @Test func everyKindIsTraced() throws {
        let m = try GmemMount(["--guest-view", "--max-memory", "40K", "--file", "f:32K:mmap", "--file", "s:16K:init-shared"])
        defer { m.unmount() }
        let reader = try TraceReader(m)
        let f = m.file("f"), s = m.file("s")
        try Sys.setxattr(m.path, "user.gmem.create", "g 8K init-shared")
        try convert(f, "0 8192 shared")
        try convert(f, "0 4096 shared")
        #expect(throws: Errno.invalidArgument) { try convert(f, "1 4096 shared") }
        try Sys.withFD(f, O_RDWR) { fd in
            try Sys.setMemoryAttributes2(fd, offset: 4096, size: 4096, attributes: 8)
        }
        #expect(throws: Errno.permissionDenied) { try contents(f, count: 4096, offset: 4096) }
        #expect(throws: Errno.permissionDenied) { try write(f, [1], at: 8192) }
        #expect(try write(m.guest("s"), Array("guest".utf8), at: 100) == 5)
        try Sys.withFD(s, O_RDWR) { fd in
            try Sys.fallocate(fd, mode: Falloc.keepSize, offset: 0, length: 8192)
            try Sys.fallocate(fd, mode: Falloc.keepSize | Falloc.punchHole, offset: 0, length: 4096)
        }
        try Sys.withFD(f, O_RDWR) { fd in
            try Sys.fallocate(fd, mode: Falloc.keepSize, offset: 0, length: 32768)
        }
        try Sys.withFD(m.file("g"), O_RDWR) { fd in
            #expect(throws: Errno.noSpace) { try Sys.fallocate(fd, mode: Falloc.keepSize, offset: 0, length: 8192) }   // 4K (s) + 32K (f) + 8K > 40K
        }
        #expect(unlink(m.file("g")) == 0)

        let expected: [(file: String, event: String, range: String, outcome: String)] = [
            ("g", "create", "0-2000", "ok"),
            ("f", "convert", "0-2000", "became-shared"),
            ("f", "convert", "0-1000", "unchanged"),
            ("f", "convert", "0-0", "EINVAL"),
            ("f", "invalidate", "1000-2000", "ok"),
            ("f", "convert", "1000-2000", "became-private"),
            ("f", "read-refused", "1000-2000", "EACCES"),
            ("f", "write-refused", "2000-2001", "EACCES"),
            ("s", "guest-write", "64-69", "ok"),
            ("s", "allocate", "0-2000", "ok"),
            ("s", "punch", "0-1000", "ok"),
            ("f", "allocate", "0-8000", "ok"),
            ("g", "allocate", "0-2000", "ENOSPC"),
            ("g", "remove", "0-2000", "ok"),
        ]
        #expect(reader.wait { lines in expected.allSatisfy { Self.find(lines, file: $0.file, event: $0.event, range: $0.range, outcome: $0.outcome) != nil } },
                "\(reader.text)")
        let lines = reader.lines
        // In the order they happened (the invalidation completes inside its conversion).
        let order = expected.compactMap { e in lines.firstIndex { $0.count >= 8 && $0[1] == e.file && $0[2] == e.event && $0[3] == e.range && $0[6] == e.outcome } }
        #expect(order == order.sorted() && order.count == expected.count, "\(reader.text)")
        for l in lines {
            // Timed kinds carry a duration, the others "-"; every requester is a thread of this
            // test process (the pid field is the calling thread's id).
            let timed = ["convert", "invalidate", "guest-write", "allocate", "punch"].contains(l[2])
            #expect(timed ? l[7].hasSuffix("us") : l[7] == "-", "\(l)")
            #expect(FileManager.default.fileExists(atPath: "/proc/\(getpid())/task/\(l[4])"), "a thread of this test process: \(l)")
        }
        #expect(Self.find(lines, file: "f", event: "convert", outcome: "became-private")?.suffix(2) == ["via=ioctl", "to=private"])
        #expect(Self.find(lines, file: "f", event: "convert", outcome: "became-shared")?.suffix(2) == ["via=xattr", "to=shared"])
        #expect(Self.find(lines, file: "g", event: "create")?.last == "flags=init-shared")
        #expect(m.unmount() == 0)
    }

    /// Page references and armed faults: pin and unpin (also the release of a closed holder),
    /// a conversion refused for references with the errno its caller saw (EAGAIN by ioctl,
    /// EBUSY by xattr) and its error_offset, an armed fault and the conversion it failed.
    @Test func referencesAndInjectedFailuresAreTraced() throws {
        let m = try GmemMount(["--file", "f:16K:mmap,init-shared"])
        defer { m.unmount() }
        let reader = try TraceReader(m)
        let f = m.file("f")
        let fd = try Sys.open(f, O_RDWR)
        try PageReferenceTests.reference(fd, PageReferenceTests.pin, offset: 4096, size: 4096)
        #expect(throws: Errno.resourceTemporarilyUnavailable) {
            try Sys.setMemoryAttributes2(fd, offset: 0, size: 16384, attributes: GmemAttributeName.privateBit)
        }
        #expect(throws: Errno.resourceBusy) { try convert(f, "0 16K private") }
        #expect(throws: Errno.noSuchFileOrDirectory) { try PageReferenceTests.reference(fd, PageReferenceTests.unpin, offset: 8192, size: 4096) }
        try PageReferenceTests.reference(fd, PageReferenceTests.unpin, offset: 4096, size: 4096)
        try PageReferenceTests.reference(fd, PageReferenceTests.pin, offset: 0, size: 8192)
        try fd.close()   // releases the pin
        #expect(PageReferenceTests.awaitReferences(f, 0))
        try Sys.setxattr(f, GmemXattr.inject, "enomem")
        #expect(throws: Errno.noMemory) { try convert(f, "0 4096 private") }
        try Sys.setxattr(f, GmemXattr.inject, "clear")

        let expected: [(event: String, range: String, outcome: String, detail: [String])] = [
            ("pin", "1000-2000", "ok", []),
            ("convert", "0-4000", "EAGAIN", ["via=ioctl", "to=private", "error_offset=0x1000", "cause=references"]),
            ("convert", "0-4000", "EBUSY", ["via=xattr", "to=private", "error_offset=0x1000", "cause=references"]),
            ("unpin", "2000-3000", "ENOENT", []),
            ("unpin", "1000-2000", "ok", []),
            ("pin", "0-2000", "ok", []),
            ("unpin", "0-4000", "ok", ["on=close", "references=2"]),
            ("inject", "0-0", "ok", ["arm=enomem", "count=1"]),
            ("convert", "0-1000", "ENOMEM", ["via=xattr", "to=private", "error_offset=0x0", "cause=injected-enomem"]),
            ("inject", "0-0", "ok", ["clear=all"]),
        ]
        func matches(_ l: [String], _ e: (event: String, range: String, outcome: String, detail: [String])) -> Bool {
            l.count >= 8 && l[1] == "f" && l[2] == e.event && l[3] == e.range && l[6] == e.outcome && Array(l.dropFirst(8)) == e.detail
        }
        #expect(reader.wait { lines in expected.allSatisfy { e in lines.contains { matches($0, e) } } }, "\(reader.text)")
        let order = expected.compactMap { e in reader.lines.firstIndex { matches($0, e) } }
        #expect(order == order.sorted() && order.count == expected.count, "\(reader.text)")
        // The release is the kernel's request on behalf of no caller: no pid.
        #expect(reader.lines.first { matches($0, expected[6]) }?[4] == "-")
        #expect(m.unmount() == 0)
    }

    @Test func twoReadersGetEveryEvent() throws {
        let m = try GmemMount(["--file", "f:64K:init-shared"])
        defer { m.unmount() }
        let a = try TraceReader(m), b = try TraceReader(m)
        for i in 0..<100 { try convert(m.file("f"), "\(i / 2 % 16 * 4096) 4096 \(i % 2 == 0 ? "private" : "shared")") }
        // 100 conversions; the 50 to private each invalidate too.
        for r in [a, b] {
            #expect(r.wait { $0.filter { $0.count > 2 && $0[2] == "convert" }.count == 100 }, "\(r.text)")
            #expect(r.lines.filter { $0[2] == "invalidate" }.count == 50)
            #expect(!r.text.contains("lost"))
        }
        #expect(a.lines.map { $0[0] + $0[3] + $0[6] } == b.lines.map { $0[0] + $0[3] + $0[6] })
        #expect(m.unmount() == 0)
    }

    /// A stopped reader costs nothing: conversions run while its ring overflows, and after
    /// SIGCONT it reads `lost N events` and then the newest events; nothing is counted twice or
    /// lost silently.
    @Test func stoppedReaderLosesEventsNotTime() throws {
        let m = try GmemMount(["--file", "f:16K:init-shared"])
        defer { m.unmount() }
        let reader = try TraceReader(m)
        kill(reader.process.processIdentifier, SIGSTOP)
        // 3000 to-private conversions (convert + invalidate) and 3000 to-shared: 9000 events,
        // more than twice a reader's ring (4096).
        let py = try Python.run("""
            import time
            f = sys.argv[1]
            t = time.monotonic()
            for i in range(3000):
                os.setxattr(f, 'user.gmem.set_attributes', b'0 4096 private')
                os.setxattr(f, 'user.gmem.set_attributes', b'0 4096 shared')
            print('%.3f' % (time.monotonic() - t))
            """, [m.file("f")], timeout: 60)
        #expect(py.succeeded, "\(py)")
        #expect(stats(m.file("f"))[.conversions] == "6000")
        kill(reader.process.processIdentifier, SIGCONT)
        func count(_ lines: [[String]]) -> (events: Int, lost: Int) {
            (lines.filter { $0.count >= 8 }.count, lines.filter { $0.first == "lost" }.reduce(0) { $0 + (Int($1[1]) ?? 0) })
        }
        #expect(reader.wait { count($0).events + count($0).lost == 9000 }, "\(count(reader.lines))")
        let (events, lost) = count(reader.lines)
        #expect(lost > 0 && events >= 4096, "events \(events), lost \(lost)")
        // The newest event is there: the last conversion, to shared.
        #expect(reader.lines.last.map { $0[2] == "convert" && $0[6] == "became-shared" } == true)
        #expect(m.unmount() == 0)
    }

    /// `argv` run with no signal blocked.
    static func unblocked(_ argv: [String]) -> [String] {
        ["python3", "-c", "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execvp(sys.argv[1], sys.argv[1:])"] + argv
    }

    /// A reader blocked in read(2) ends on a signal: the daemon answers the interrupted READ.
    @Test func interruptedReaderExits() throws {
        let m = try GmemMount(["--file", "f:16K"])
        defer { m.unmount() }
        for signal in ["TERM", "INT", "KILL"] {
            let started = Date()
            // Children of the test process inherit its blocked SIGINT/SIGTERM: unblock first,
            // as a shell would have them.
            let r = try run(Self.unblocked(["timeout", "-s", signal, "1", "cat", "\(m.path)/.trace"]), timeout: 20)
            #expect(r.status == 124 || r.signal == SIGKILL || r.status == 128 + 9, "\(signal): \(r)")
            #expect(Date().timeIntervalSince(started) < 10, "\(signal)")
        }
        // A stop signal does not end the read: after SIGCONT the reader still gets events.
        let reader = try TraceReader(m)
        kill(reader.process.processIdentifier, SIGSTOP)
        usleep(300_000)
        kill(reader.process.processIdentifier, SIGCONT)
        try convert(m.file("f"), "0 4096 shared")
        #expect(reader.wait { Self.find($0, file: "f", event: "convert") != nil }, "\(reader.text)")
        #expect(reader.process.isRunning)
        // The daemon served all of this on its worker threads and is still answering.
        #expect((try? Sys.stat(m.file("f"))) != nil)
        #expect(m.unmount() == 0)
    }

    /// Readers parked in read(2) do not hold the daemon's worker threads: more of them than the
    /// daemon has threads, and the mount still answers.
    @Test func parkedReadersDoNotHoldWorkers() throws {
        let m = try GmemMount(["--threads", "2", "--file", "f:16K"])
        defer { m.unmount() }
        let readers = try (0..<6).map { _ in try TraceReader(m) }
        try convert(m.file("f"), "0 4096 shared")
        #expect(try contents(m.file("f"), count: 4096).count == 4096)
        for r in readers { #expect(r.wait { Self.find($0, file: "f", event: "convert") != nil }, "\(r.text)") }
        #expect(m.unmount() == 0)
    }

    /// A clean stop (SIGTERM, what `umount` and the harness send) ends a reader as at the end of
    /// a file: exit 0 with the events it saw, not ECONNABORTED ("Software caused connection
    /// abort"), for `cat` and `gmemctl trace` alike.
    @Test func aCleanStopEndsReadersAsAtEndOfFile() throws {
        let m = try GmemMount(["--file", "f:16K"])
        defer { m.unmount() }
        let cat = try TraceReader(m)
        let ctl = try TraceReader(m, [binDirectory() + "/gmemctl", "trace", m.path])
        try convert(m.file("f"), "0 4096 shared")
        #expect(cat.wait { $0.contains { $0.contains("convert") } }, "\(cat.text)")
        #expect(m.unmount() == 0)
        cat.process.waitUntilExit()
        ctl.process.waitUntilExit()
        #expect(cat.process.terminationStatus == 0, "\(cat.text)")
        #expect(!cat.text.contains("abort") && cat.text.contains(" convert "), "\(cat.text)")
        #expect(ctl.process.terminationStatus == 0 && !ctl.text.contains("abort"), "\(ctl.text)")
    }

    /// `gmemctl trace`: filtered by file and kind, JSON for scripts, aligned text without colour
    /// when stdout is not a terminal.
    @Test func gmemctlTrace() throws {
        let m = try GmemMount(["--file", "f:64K:mmap", "--file", "g:16K"])
        defer { m.unmount() }
        let gmemctl = binDirectory() + "/gmemctl"
        let json = try TraceReader(m, [gmemctl, "trace", m.file("f"), "--events", "convert,read-refused", "--json", "--count", "3"])
        let text = try TraceReader(m, [gmemctl, "trace", m.path])
        try convert(m.file("g"), "0 4096 shared")      // another file: filtered out
        try convert(m.file("f"), "0 8192 shared")
        try convert(m.file("f"), "0 4096 private")     // + invalidate: another kind
        #expect(throws: Errno.permissionDenied) { try contents(m.file("f"), count: 4096) }
        json.process.waitUntilExit()
        #expect(json.process.terminationStatus == 0)
        let objects = json.text.split(separator: "\n")
        #expect(objects.count == 3, "\(json.text)")
        // One JSON object per line, with exactly the documented keys.
        let docs = objects.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(docs.count == 3)
        guard docs.count == 3 else { return }
        #expect(Set(docs[0].keys) == ["time", "file", "event", "start", "end", "pid", "comm", "outcome", "duration_us", "detail"])
        #expect(docs[0]["file"] as? String == "f" && docs[0]["event"] as? String == "convert")
        #expect(docs[0]["start"] as? Int == 0 && docs[0]["end"] as? Int == 8192 && (docs[0]["pid"] as? Int ?? 0) > 0)
        #expect(docs[0]["outcome"] as? String == "became-shared" && docs[0]["time"] is Double)
        #expect(docs[0]["detail"] as? [String: String] == ["via": "xattr", "to": "shared"])
        #expect(docs[1]["outcome"] as? String == "became-private" && docs[2]["event"] as? String == "read-refused")
        #expect(docs[2]["outcome"] as? String == "EACCES" && docs[2]["duration_us"] is NSNull)
        #expect(text.wait { $0.contains { $0.contains("read-refused") } }, "\(text.text)")
        let rows = text.text.split(separator: "\n")
        #expect(!text.text.contains("\u{1B}"))
        #expect(rows.count >= 5 && rows.allSatisfy { $0.split(separator: " ")[1] == "f" || $0.split(separator: " ")[1] == "g" }, "\(text.text)")
        // Aligned: the event column starts at the same place on every row.
        let kinds = ["convert", "invalidate", "read-refused"]
        for row in rows {
            let event = String(row.dropFirst(28).prefix(while: { $0 != " " }))
            #expect(kinds.contains(event), "\(row)")
        }
        let bad = try run([gmemctl, "trace", m.path, "--events", "bogus"])
        #expect(bad.status == 64 && bad.stderr.contains("unknown kind 'bogus'"))
        #expect(m.unmount() == 0)
    }

    /// The trace is the daemon's user's, as the guest view: nobody gets EACCES even with
    /// allow_other; writing it is refused even to root.
    @Test(.enabled(if: getuid() == 0)) func otherUsersCannotTrace() throws {
        let m = try PermissionTests.mount(["-o", "allow_other", "--file", "f:16K"])
        defer { m.unmount() }
        let trace = "\(m.path)/.trace"
        #expect((try? Sys.stat(trace)).map { "\(String($0.st_mode & 0o7777, radix: 8)) \($0.st_uid)" } == "400 0")
        let denied = try PermissionTests.asNobody(["timeout", "5", "cat", trace])
        #expect(!denied.succeeded && denied.stderr.contains("Permission denied"), "\(denied)")
        #expect(throws: Errno.permissionDenied) { try Sys.open(trace, O_WRONLY) }
        #expect(throws: Errno.permissionDenied) { try Sys.open(trace, O_RDWR) }
        #expect(chmod(trace, 0o444) != 0 && errno == EPERM)
        #expect(m.unmount() == 0)
    }
}
