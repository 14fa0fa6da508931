import Foundation
import GmemABI
import GmemTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Daemon-wide behaviour: the memory cap, signals, and the KVM_SET_MEMORY_ATTRIBUTES2 ioctl.
@Suite(.serialized, .enabled(if: FUSE.available))
struct DaemonTests {
    @Test func maxMemoryIsENOSPCWithEarlierDataIntact() throws {
        let m = try GmemMount(["--file", "a:64K:mmap,init-shared", "--file", "b:64K:init-shared", "--max-memory", "16K"])
        defer { m.unmount() }
        #expect((try? write(m.file("a"), Array(repeating: 1, count: 8192), at: 0)) == 8192)
        #expect((try? write(m.file("b"), Array(repeating: 2, count: 8192), at: 0)) == 8192)
        #expect(stats(m.path)[.allocatedBytes] == "16384")
        #expect(throws: Errno.noSpace) { try write(m.file("b"), [3], at: 8192) }
        #expect(throws: Errno.noSpace) { try write(m.file("a"), [3], at: 32768) }
        #expect(throws: Errno.noSpace) { try Sys.withFD(m.file("a"), O_RDWR) { try Sys.fallocate($0, mode: Falloc.keepSize, offset: 16384, length: 4096) } }
        let dd = try run(["dd", "if=/dev/zero", "of=\(m.file("b"))", "bs=4096", "count=4", "conv=notrunc", "status=none"])
        #expect(!dd.succeeded)
        #expect(dd.stderr.contains("No space left on device"))
        // Rewriting allocated pages still works; earlier data is intact.
        #expect((try? write(m.file("a"), [9], at: 0)) == 1)
        #expect((try? contents(m.file("a"), count: 8192)) == [9] + Array(repeating: 1, count: 8191))
        // dd rewrote the two allocated pages with zeros before failing on the third.
        #expect((try? contents(m.file("b"), count: 8192)) == Array(repeating: 0, count: 8192))
        #expect(stats(m.path)[.allocatedBytes] == "16384")
        // Punching frees budget.
        #expect(try run(["fallocate", "-p", "-o", "0", "-l", "8K", m.file("b")]).succeeded)
        #expect((try? write(m.file("a"), [4], at: 32768)) == 1)
        #expect(stats(m.path)[.allocatedBytes] == "12288")
    }

    @Test func sigtermExitsZeroAndUnmounts() throws {
        let m = try GmemMount(["--file", "f:64K"])
        defer { m.unmount() }
        #expect(GmemMount.isMounted(m.path))
        #expect(m.unmount(signal: SIGTERM) == 0)
        #expect(!GmemMount.isMounted(m.path))
        let i = try GmemMount(["--file", "f:64K"])
        defer { i.unmount() }
        #expect(i.unmount(signal: SIGINT) == 0)
        #expect(!GmemMount.isMounted(i.path))
    }

    @Test func setMemoryAttributes2Ioctl() throws {
        let m = try GmemMount(["--file", "f:64K:mmap", "--guest-view"])
        defer { m.unmount() }
        let f = m.file("f")
        let priv = GmemAttributeName.privateBit
        try Sys.withFD(f, O_RDWR) { fd in
            #expect(throws: Never.self) { try Sys.setMemoryAttributes2(fd, offset: 0, size: 8192, attributes: 0) }
            #expect(attributes(f) == "0-2000 shared\n2000-10000 private\n")
            let map = attributes(f)
            #expect(throws: Errno.invalidArgument) { try Sys.setMemoryAttributes2(fd, offset: 0, size: 4096, attributes: priv, flags: 1) }
            var reserved = Array(repeating: UInt64(0), count: KVMMemoryAttributes2.reservedCount); reserved[10] = 1
            #expect(throws: Errno.invalidArgument) { try Sys.setMemoryAttributes2(fd, offset: 0, size: 4096, attributes: priv, reserved: reserved) }
            #expect(throws: Errno.invalidArgument) { try Sys.setMemoryAttributes2(fd, offset: 0, size: 4096, attributes: priv << 1) }
            #expect(throws: Errno.invalidArgument) { try Sys.setMemoryAttributes2(fd, offset: 0, size: 0, attributes: priv) }
            #expect(throws: Errno.invalidArgument) { try Sys.setMemoryAttributes2(fd, offset: 1, size: 4096, attributes: priv) }
            #expect(throws: Errno.invalidArgument) { try Sys.setMemoryAttributes2(fd, offset: 0xffff_ffff_ffff_f000, size: 0x2000, attributes: priv) }
            #expect(throws: Errno.invalidArgument) { try Sys.setMemoryAttributes2(fd, offset: 65536, size: 4096, attributes: priv) }
            #expect(throws: Errno.inappropriateIOCTLForDevice) { try Sys.setMemoryAttributes2(fd, offset: 0, size: 4096, attributes: priv, command: UInt(KVMMemoryAttributes2.ioctlNumber) + 1) }
            #expect(attributes(f) == map)
        }
        try Sys.withFD(f, O_RDONLY) { fd in
            #expect(throws: Errno.badFileDescriptor) { try Sys.setMemoryAttributes2(fd, offset: 0, size: 4096, attributes: priv) }
        }
        try Sys.withFD(m.guest("f"), O_RDWR) { fd in
            #expect(throws: Never.self) { try Sys.setMemoryAttributes2(fd, offset: 0, size: 65536, attributes: priv) }
        }
        #expect(attributes(f) == "0-10000 private\n")
    }
}
