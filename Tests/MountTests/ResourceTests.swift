import Foundation
import GmemABI
import GmemTestSupport
import Testing

/// Guarantee G6 (docs/security.md): the memory cap, freeing memory, and memory proportional to the map.
@Suite(.serialized, .enabled(if: FUSE.available))
struct ResourceTests {
    /// Resident memory of `pid` in bytes (VmRSS).
    static func rss(_ pid: pid_t) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
    }

    static func stat(_ path: String, _ key: String) -> UInt64? {
        guard let text = try? Sys.getxattr(path, GmemXattr.stats) else { return nil }
        return text.split(separator: "\n").first { $0.hasPrefix(key + "=") }.flatMap { UInt64($0.dropFirst(key.count + 1)) }
    }

    static func page(_ byte: UInt8, count: Int = 4096) -> [UInt8] { Array(repeating: byte, count: count) }

    @Test(arguments: ["init-shared", "mmap,init-shared"])
    func maxMemoryIsENOSPCWithEarlierDataIntact(_ flags: String) throws {
        let m = try GmemMount(["--file", "f:4M:\(flags)", "--file", "g:1M:init-shared", "--max-memory", "1M"])
        defer { m.unmount() }
        let f = m.file("f")
        try Sys.withFD(f, O_RDWR) { fd throws in
            // 256 pages fit, each with its own byte.
            for i in 0..<256 { #expect((try? Sys.pwrite(fd, Self.page(UInt8(i & 0x7f)), offset: i * 4096)) == 4096) }
            // Page 257: over the cap, in this file and in the other one.
            #expect(throws: Errno.noSpace) { try Sys.pwrite(fd, Self.page(0xee), offset: 256 * 4096) }
            #expect(throws: Errno.noSpace) { try Sys.fallocate(fd, mode: Falloc.keepSize, offset: 300 * 4096, length: 4096) }
            #expect(throws: Errno.noSpace) { try Sys.withFD(m.file("g"), O_RDWR) { try Sys.pwrite($0, [1], offset: 0) } }
            // Rewriting allocated pages is fine at the cap.
            #expect((try? Sys.pwrite(fd, Self.page(5), offset: 5 * 4096)) == 4096)
            // Earlier data intact.
            for i in [0, 1, 5, 100, 255] {
                #expect((try? Sys.pread(fd, count: 4096, offset: i * 4096)) == Self.page(i == 5 ? 5 : UInt8(i & 0x7f)))
            }
            #expect(Self.stat(m.path, "allocated_bytes") == 1 << 20)
            // Punching frees budget: the refused write now succeeds.
            #expect(throws: Never.self) { try Sys.fallocate(fd, mode: Falloc.punchHole | Falloc.keepSize, offset: 0, length: 4096) }
            #expect((try? Sys.pwrite(fd, Self.page(0xee), offset: 256 * 4096)) == 4096)
            #expect(throws: Errno.noSpace) { try Sys.pwrite(fd, Self.page(0xef), offset: 257 * 4096) }
        }
        #expect(m.isAlive)
        #expect(m.unmount() == 0)
    }

    @Test func removingAFileFreesItsMemory() throws {
        let m = try GmemMount(["--file", "keep:4K"])
        defer { m.unmount() }
        #expect(throws: Never.self) { try Sys.setxattr(m.path, GmemXattr.create, "big 128M init-shared") }
        let f = m.file("big")
        let before = Self.rss(m.pid)
        let chunk = Self.page(0x42, count: 1 << 20)
        try Sys.withFD(f, O_RDWR) { fd in
            for i in 0..<64 { #expect((try? Sys.pwrite(fd, chunk, offset: i << 20)) == 1 << 20) }
        }
        let written = Self.rss(m.pid)
        #expect(Self.stat(m.path, "allocated_bytes") == 64 << 20)
        #expect(unlink(f) == 0)
        // close(2) does not wait for FUSE_RELEASE: the memory goes when the daemon has seen both.
        #expect(LifecycleTests.eventually(15) { Self.stat(m.path, "allocated_bytes") == 0 })
        let after = Self.rss(m.pid)
        print("daemon VmRSS: before \(before >> 10) KiB, after writing 64 MiB \(written >> 10) KiB, after rm \(after >> 10) KiB")
        #expect(written - before >= 60 << 20, "64 MiB written should be resident")
        #expect(written - after >= 60 << 20, "rm should give the 64 MiB back")
        #expect(m.unmount() == 0)
    }

    @Test func fileStaysAllocatedWhileOpenAfterRemoval() throws {
        let m = try GmemMount(["--file", "f:16M:init-shared"])
        defer { m.unmount() }
        let fd = open(m.file("f"), O_RDWR)
        defer { close(fd) }
        #expect((try? Sys.pwrite(FileDescriptor(rawValue: fd), Self.page(7, count: 8 << 20), offset: 0)) == 8 << 20)
        #expect(unlink(m.file("f")) == 0)
        // Unlinked but open: memory and data stay until the last close.
        #expect(Self.stat(m.path, "allocated_bytes") == 8 << 20)
        #expect((try? Sys.pread(FileDescriptor(rawValue: fd), count: 4, offset: 4096)) == [7, 7, 7, 7])
        close(fd)
        #expect(LifecycleTests.eventually(15) { Self.stat(m.path, "allocated_bytes") == 0 })
    }

    @Test func fragmentedMapMemoryIsProportionalToRanges() throws {
        let m = try GmemMount(["--file", "f:64M:mmap"])
        defer { m.unmount() }
        let f = m.file("f")
        let before = Self.rss(m.pid)
        // 2048 conversions: every other page of the first 16 MiB becomes shared (4096 ranges:
        // 2048 shared ones, 2047 private between them, and the private rest of the file).
        let start = Date()
        for p in 0..<2048 {
            #expect(throws: Never.self) { try Sys.setxattr(f, GmemXattr.setAttributes, "\(p * 2 * 4096) 4096 shared") }
        }
        let elapsed = Date().timeIntervalSince(start)
        #expect(Self.stat(f, "ranges") == 4096)
        #expect(Self.stat(f, "conversions") == 2048)
        let fragmented = Self.rss(m.pid)
        // Then 2048 more that heal it back to one range.
        for p in 0..<2048 {
            #expect(throws: Never.self) { try Sys.setxattr(f, GmemXattr.setAttributes, "\(p * 2 * 4096) 4096 private") }
        }
        #expect(Self.stat(f, "ranges") == 1)
        let healed = Self.rss(m.pid)
        print("fragmented map: 4096 conversions (2048 in \(String(format: "%.2f", elapsed)) s); VmRSS before \(before >> 10) KiB, at 4096 ranges \(fragmented >> 10) KiB, healed \(healed >> 10) KiB")
        // A range costs bytes, not pages: 4096 ranges must not cost more than a few MiB
        // (a per-page structure for 16384 pages, or a leak per conversion, would).
        #expect(fragmented - before < 8 << 20)
        #expect(healed - before < 8 << 20)
        #expect(Self.stat(f, "allocated_bytes") == 0, "conversions allocate nothing")
        #expect(m.unmount() == 0)
    }
}
