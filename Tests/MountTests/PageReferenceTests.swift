import CLinuxSys
import Foundation
import GmemABI
import GmemTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Page references (GMEM_PIN_PAGES / GMEM_UNPIN_PAGES), the conversions they refuse, and
/// injected faults (docs/semantics.md, "Page references" and "Error injection").
@Suite(.serialized, .enabled(if: FUSE.available))
struct PageReferenceTests {
    static let pin = UInt(GmemPageReference.pinNumber)
    static let unpin = UInt(GmemPageReference.unpinNumber)

    /// Pins or unpins through `fd`.
    static func reference(_ fd: FileDescriptor, _ command: UInt, offset: UInt64, size: UInt64) throws(Errno) {
        var bytes = GmemPageReference(offset: offset, size: size).encode()
        _ = try Sys.checked(bytes.withUnsafeMutableBytes { clinux_ioctl_ptr(fd.rawValue, command, $0.baseAddress) })
    }

    /// Waits (up to 10 s) until `user.gmem.stats` shows `references=want`. The kernel sends
    /// RELEASE after the last close returns, so a released reference goes a moment later.
    static func awaitReferences(_ path: String, _ want: Int) -> Bool {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if stats(path)[.references] == String(want) { return true }
            usleep(5_000)
        }
        return false
    }

    /// The same in `--kernel-compat` mode: the conversion rules (EAGAIN only to private, the
    /// early return, error_offset) do not depend on the mode.
    @Test(arguments: [[], ["--kernel-compat"]])
    func cProgramPinsConvertsAndInjects(mode: [String]) throws {
        let binary = try RaceTests.compile("page_refs.c")
        defer { unlink(binary) }
        let m = try GmemMount(["--file", "g:64K:mmap,init-shared"] + mode)
        defer { m.unmount() }
        let r = try run([binary, "abi", m.file("g")])
        #expect(r.succeeded, "\(r)\n\(r.output)")
        #expect(!r.output.contains("FAIL"), "\(r.output)")
        #expect(r.output.hasSuffix("0 failure(s)\n"))
        // Every refusal left the map as the successful calls made it.
        #expect(attributes(m.file("g")) == "0-b000 private\nb000-10000 shared\n")
        #expect(stats(m.file("g"))[.references] == "0")
        #expect(m.unmount() == 0)
    }

    @Test func closeReleasesTheReference() throws {
        let m = try GmemMount(["--file", "g:16K:mmap,init-shared"])
        defer { m.unmount() }
        let f = m.file("g")
        let fd = try Sys.open(f, O_RDONLY)
        try Self.reference(fd, Self.pin, offset: 4096, size: 4096)
        #expect(stats(f)[.references] == "1")
        #expect(throws: Errno.resourceBusy) { try convert(f, "0 16K private") }
        try fd.close()
        #expect(Self.awaitReferences(f, 0))
        try convert(f, "0 16K private")
    }

    /// Every refused pin, unpin, injection and conversion leaves one log line with its reason.
    @Test func refusalsAreLoggedWithTheirReason() throws {
        let m = try GmemMount(["--file", "g:16K:mmap,init-shared"])
        defer { m.unmount() }
        let f = m.file("g")
        let fd = try Sys.open(f, O_RDWR)
        defer { try? fd.close() }
        try Self.reference(fd, Self.pin, offset: 4096, size: 4096)
        #expect(throws: Errno.invalidArgument) { try Self.reference(fd, Self.pin, offset: 1, size: 4096) }
        #expect(throws: Errno.noSuchFileOrDirectory) { try Self.reference(fd, Self.unpin, offset: 8192, size: 4096) }
        #expect(throws: Errno.resourceTemporarilyUnavailable) {
            try Sys.setMemoryAttributes2(fd, offset: 0, size: 16384, attributes: GmemAttributeName.privateBit)
        }
        #expect(throws: Errno.resourceBusy) { try convert(f, "0 16K private") }
        #expect(throws: Errno.invalidArgument) { try Sys.setxattr(f, GmemXattr.inject, "eagain 1") }
        let refusals = m.log.split(separator: "\n").filter { $0.contains("refused") }
        #expect(refusals.count == 5, "\(m.log)")
        for (i, want) in [["refused ioctl GMEM_PIN_PAGES on /g", "multiples of 4096"],
                          ["refused ioctl GMEM_UNPIN_PAGES on /g", "holds no reference"],
                          ["refused ioctl KVM_SET_MEMORY_ATTRIBUTES2 [0, +16384) on /g", "page at offset 4096 has references (Resource temporarily unavailable)"],
                          [#"refused setxattr user.gmem.set_attributes "0 16K private" on /g"#, "page at offset 4096 has references"],
                          [#"refused setxattr user.gmem.inject "eagain 1" on /g"#, "multiple of 4096"]].enumerated() where i < refusals.count {
            #expect(want.allSatisfy { refusals[i].contains($0) }, "\(refusals[i]) lacks \(want)")
        }
        #expect(attributes(f) == "0-4000 shared\n")
    }

    @Test func sigkilledHolderLeavesNoReference() throws {
        let binary = try RaceTests.compile("page_refs.c")
        defer { unlink(binary) }
        let m = try GmemMount(["--file", "g:16K:mmap,init-shared"])
        defer { m.unmount() }
        let f = m.file("g")
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: binary)
        holder.arguments = ["hold", f, "0x1000", "0x2000"]
        holder.standardOutput = FileHandle.nullDevice
        try holder.run()
        defer { if holder.isRunning { kill(holder.processIdentifier, SIGKILL); holder.waitUntilExit() } }
        #expect(Self.awaitReferences(f, 2))
        #expect(throws: Errno.resourceBusy) { try convert(f, "0 16K private") }
        #expect(stats(f)[.referencedBytes] == "8192")
        kill(holder.processIdentifier, SIGKILL)
        holder.waitUntilExit()
        #expect(Self.awaitReferences(f, 0))
        try convert(f, "0 16K private")
        #expect(attributes(f) == "0-4000 private\n")
        #expect(stats(f)[.eagainRefusals] == "1")
    }

    /// A reference belongs to the open file description: after fork, the child's copy keeps
    /// it alive when the parent closes; the child's death drops it.
    @Test func forkedChildKeepsTheSharedOpenFile() throws {
        let binary = try RaceTests.compile("page_refs.c")
        defer { unlink(binary) }
        let m = try GmemMount(["--file", "g:16K:mmap,init-shared"])
        defer { m.unmount() }
        let f = m.file("g")
        let r = try run([binary, "fork", f])
        let child = try #require(pid_t(r.output.trimmingCharacters(in: .whitespacesAndNewlines)), "\(r)")
        defer { kill(child, SIGKILL) }
        #expect(stats(f)[.references] == "1")
        #expect(throws: Errno.resourceBusy) { try convert(f, "0 4K private") }
        kill(child, SIGKILL)
        #expect(Self.awaitReferences(f, 0))
        try convert(f, "0 4K private")
    }

    /// A refused conversion changes nothing a concurrent reader can see: every read of the
    /// whole file returns all of its bytes, before, during and after 300 refusals.
    @Test func refusalIsInvisibleToAConcurrentReader() throws {
        let m = try GmemMount(["--file", "g:64K:mmap,init-shared"])
        defer { m.unmount() }
        let py = try Python.run("""
            import fcntl, struct, threading
            path = sys.argv[1]
            fd = os.open(path, os.O_RDWR)
            data = bytes((i * 7 + 1) & 0xff for i in range(16 * P))
            check(os.pwrite(fd, data, 0) == len(data), 'fill')
            pinfd = os.open(path, os.O_RDONLY)
            fcntl.ioctl(pinfd, GMEM_PIN_PAGES, struct.pack('<8Q', 5 * P, P, 0, 0, 0, 0, 0, 0))
            stop = False
            bad = []
            reads = [0]
            def reader():
                rfd = os.open(path, os.O_RDONLY)
                while not stop:
                    try:
                        got = os.pread(rfd, len(data), 0)
                    except OSError as e:
                        bad.append(errno.errorcode[e.errno]); return
                    if got != data:
                        bad.append('short or changed: %d bytes' % len(got)); return
                    reads[0] += 1
            ts = [threading.Thread(target=reader) for _ in range(2)]
            for t in ts: t.start()
            for i in range(300):
                buf = bytearray(struct.pack('<16Q', *([0, 16 * P, 8] + [0] * 13)))
                try:
                    fcntl.ioctl(fd, KVM_SET_MEMORY_ATTRIBUTES2, buf, True)
                    bad.append('conversion %d succeeded' % i); break
                except OSError as e:
                    if e.errno != errno.EAGAIN: bad.append('conversion %d: %s' % (i, errno.errorcode[e.errno])); break
                    eo = struct.unpack_from('<Q', buf, 32)[0]
                    if eo != 5 * P: bad.append('error_offset 0x%x' % eo); break
            stop = True
            for t in ts: t.join()
            check(not bad, str(bad))
            check(reads[0] > 0, 'no read completed')
            check(os.pread(fd, len(data), 0) == data, 'contents after')
            print('ok')
            """, [m.file("g")])
        #expect(py.output == "ok\n", "\(py.stderr)")
        #expect(attributes(m.file("g")) == "0-10000 shared\n")
        let s = stats(m.file("g"))
        #expect(s[.conversions] == "0")
        #expect(s[.eagainRefusals] == "300")
        #expect(Self.awaitReferences(m.file("g"), 0))   // the script exited: its open files are released
    }

    /// docs/examples/vmm_retry.c, run as the tutorial's transcript shows: every output block
    /// below is in docs/tutorial.md verbatim.
    @Test func vmmRetryExample() throws {
        let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../docs")
        let binary = FileManager.default.temporaryDirectory.appendingPathComponent("vmm_retry-\(getpid())").path
        let cc = try run(["cc", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-o", binary, docs.appendingPathComponent("examples/vmm_retry.c").path])
        #expect(cc.succeeded, "\(cc)")
        defer { unlink(binary) }
        let tutorial = try String(contentsOf: docs.appendingPathComponent("tutorial.md"), encoding: .utf8)
        let m = try GmemMount(["--file", "x:4K"])
        defer { m.unmount() }
        try Sys.setxattr(m.path, GmemXattr.create, "vm 64K mmap,init-shared")
        let f = m.file("vm")
        func step(_ expected: String, status: Int32 = 0) throws {
            let r = try run([binary, f, "0", "0x8000"])
            #expect(r.output == expected && r.status == status, "\(r)\n\(r.output)")
            let block = "$ ./vmm_retry \"$MNT/vm\" 0 0x8000\n" + expected + (status == 0 ? "" : "(exit status \(status))\n")
            #expect(tutorial.contains(block), "docs/tutorial.md lacks:\n\(block)")
        }
        try step("""
            device: pinned [0x4000, +0x1000)
            device: pinned [0x2000, +0x2000)
            attempt 1: EAGAIN, error_offset 0x2000
            device: unpinned [0x2000, +0x2000)
            attempt 2: EAGAIN, error_offset 0x4000
            device: unpinned [0x4000, +0x1000)
            attempt 3: [0x0, +0x8000) is private

            """)
        try convert(f, "0 32K shared")
        try Sys.setxattr(f, GmemXattr.inject, "eintr")
        try step("""
            device: pinned [0x4000, +0x1000)
            device: pinned [0x2000, +0x2000)
            attempt 1: EINTR, retrying
            attempt 2: EAGAIN, error_offset 0x2000
            device: unpinned [0x2000, +0x2000)
            attempt 3: EAGAIN, error_offset 0x4000
            device: unpinned [0x4000, +0x1000)
            attempt 4: [0x0, +0x8000) is private

            """)
        try convert(f, "0 32K shared")
        try Sys.setxattr(f, GmemXattr.inject, "enomem range 16K 4K")
        try step("""
            device: pinned [0x4000, +0x1000)
            device: pinned [0x2000, +0x2000)
            attempt 1: Cannot allocate memory, error_offset 0x0

            """, status: 1)
        #expect(attributes(f) == "0-10000 shared\n")
        #expect(Self.awaitReferences(f, 0))
        let s = stats(f)
        #expect(s[.eagainRefusals] == "4" && s[.injectedFailures] == "2" && s[.conversions] == "4")
    }
}
