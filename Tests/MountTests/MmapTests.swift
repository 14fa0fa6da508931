import Foundation
import GmemTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// mmap: MAP_SHARED on mmap files, SIGBUS on private pages and past EOF, ENODEV without the
/// mmap flag, and conversions revoking existing mappings (also in other processes).
@Suite(.serialized, .enabled(if: FUSE.available))
struct MmapTests {
    @Test func sharedMappingReadsWritesAndFaultsSIGBUSOnPrivate() throws {
        let m = try GmemMount(["--file", "f:64K:mmap"])
        defer { m.unmount() }
        let f = m.file("f")
        #expect(throws: Never.self) { try convert(f, "0 8K shared") }
        let py = try Python.run("""
            m = hmap(sys.argv[1], 16)
            m[0:5] = b'hello'
            check(touch(m, 4096, 7) == 0, 'write shared page 1')
            check(touch(m, 8192) == 'SIGBUS', 'read private page 2')
            check(touch(m, 65535, 1) == 'SIGBUS', 'write private last page')
            m.flush()
            print(m[0:5].decode(), m[4096])
            """, [f])
        #expect(py.output == "hello 7\n", "\(py.stderr)")
        #expect((try? contents(f, count: 5)) == Array("hello".utf8))
        // A whole-process fault: python itself dies by SIGBUS.
        let direct = try run(["python3", "-c", "import mmap,os; m=mmap.mmap(os.open('\(f)',os.O_RDWR),65536); m[8192]"])
        #expect(direct.signal == SIGBUS)
    }

    @Test func filesWithoutMmapFlagRefuseSharedMappingsWithENODEV() throws {
        let m = try GmemMount(["--file", "d:64K:init-shared"])
        defer { m.unmount() }
        try Sys.withFD(m.file("d"), O_RDWR) { fd in
            for length in [4096, 65536] {
                let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd.rawValue, 0)
                #expect(p == MAP_FAILED && errno == ENODEV)
            }
        }
        let py = try Python.run("""
            try:
                hmap(sys.argv[1], 1); print('mapped')
            except OSError as e:
                print(errno.errorcode[e.errno])
            """, [m.file("d")])
        #expect(py.output == "ENODEV\n")
    }

    @Test func conversionToPrivateRevokesAnExistingMapping() throws {
        let m = try GmemMount(["--file", "f:64K:mmap,init-shared"])
        defer { m.unmount() }
        let f = m.file("f")
        #expect((try? write(f, Array(repeating: 0x11, count: 4096), at: 0)) == 4096)
        let py = try Python.run("""
            m = hmap(sys.argv[1], 16)
            check(m[0] == 0x11, 'first read')
            # Another process converts page 0 while this mapping is live.
            r = subprocess.run(['setfattr', '-n', XATTR_SET_ATTRIBUTES, '-v', '0 4096 private', sys.argv[1]])
            check(r.returncode == 0, 'setfattr')
            print(touch(m, 0), touch(m, 0, 1), touch(m, 4096))
            # The same process then dies by SIGBUS on the same mapping.
            m[0]
            """, [f])
        #expect(py.signal == SIGBUS, "\(py)")
        #expect(py.output == "SIGBUS SIGBUS 0\n")
        #expect(throws: Errno.permissionDenied) { try contents(f, count: 1) }
    }

    @Test func dirtyMappedPageConvertedToPrivateKeepsItsData() throws {
        let m = try GmemMount(["--file", "f:64K:mmap,init-shared", "--guest-view"])
        defer { m.unmount() }
        let f = m.file("f")
        let py = try Python.run("""
            m = hmap(sys.argv[1], 16)
            m[0:11] = b'dirty bytes'           # dirty in the page cache, not written back
            m[8192:8197] = b'other'
            setattr(sys.argv[1], 0, 4096, 'private')
            check(touch(m, 0) == 'SIGBUS', 'private after conversion')
            g = os.open(sys.argv[2], os.O_RDONLY)
            check(os.pread(g, 11, 0) == b'dirty bytes', 'guest sees the data written while shared')
            setattr(sys.argv[1], 0, 4096, 'shared')
            print(m[0:11].decode(), m[8192:8197].decode())
            """, [f, m.guest("f")])
        #expect(py.output == "dirty bytes other\n", "\(py.stderr)")
        #expect((try? contents(f, count: 11)) == Array("dirty bytes".utf8))
    }

    @Test func forkedChildMappingSIGBUSesAfterParentConverts() throws {
        let m = try GmemMount(["--file", "f:16K:mmap,init-shared"])
        defer { m.unmount() }
        let f = m.file("f")
        let py = try Python.run("""
            m = hmap(sys.argv[1], 4)
            m[0] = 0xB
            r1, w1 = os.pipe(); r2, w2 = os.pipe()
            pid = os.fork()
            if pid == 0:
                check(m[0] == 0xB, 'child read'); m[0] = 0xC   # the child's mapping is live
                os.write(w1, b'x'); os.read(r2, 1)              # wait for the conversion
                m[0]                                           # must SIGBUS
                os._exit(3)
            os.read(r1, 1)
            setattr(sys.argv[1], 0, P, 'private')
            os.write(w2, b'x')
            _, st = os.waitpid(pid, 0)
            print('SIGBUS' if os.WIFSIGNALED(st) and os.WTERMSIG(st) == signal.SIGBUS else 'status %d' % st)
            """, [f])
        #expect(py.output == "SIGBUS\n", "\(py.stderr)")
        #expect(throws: Never.self) { try convert(f, "0 4K shared") }
        #expect((try? contents(f, count: 1)) == [0xC])
    }

    @Test func mappingPastEOFSIGBUSes() throws {
        let m = try GmemMount(["--file", "f:16K:mmap,init-shared"])
        defer { m.unmount() }
        let py = try Python.run("""
            m = rawmap(sys.argv[1], 16 * P)   # mmap past EOF succeeds
            print(touch(m, 3 * P, 0xaa), touch(m, 4 * P), touch(m, 15 * P, 1), touch(m, 3 * P))
            """, [m.file("f")])
        #expect(py.output == "0 SIGBUS SIGBUS 170\n", "\(py.stderr)")
    }
}

/// The guest view (`MNT/.guest/NAME`): ignores attributes; its writes to shared pages reach the
/// host at once.
@Suite(.serialized, .enabled(if: FUSE.available))
struct GuestViewTests {
    @Test func guestSecretIsInvisibleUntilShared() throws {
        let m = try GmemMount(["--file", "f:64K:mmap", "--guest-view"])
        defer { m.unmount() }
        let f = m.file("f"), g = m.guest("f")
        let st = try #require((try? Sys.stat(g)))
        #expect(st.st_mode == S_IFREG | 0o600)
        #expect(st.st_size == 65536)
        #expect(try sh("printf 'top secret' | dd of=\(g) conv=notrunc status=none").succeeded)
        #expect(try run(["dd", "if=\(g)", "bs=10", "count=1", "status=none"]).output == "top secret")
        let cat = try run(["cat", f])
        #expect(cat.status == 1 && cat.stderr.contains("Permission denied"))
        #expect(throws: Errno.permissionDenied) { try contents(f, count: 10) }
        #expect(throws: Never.self) { try convert(f, "0 4K shared") }
        #expect(try run(["dd", "if=\(f)", "bs=10", "count=1", "status=none"]).output == "top secret")
        // Converting through the guest view's name works the same.
        #expect(throws: Never.self) { try convert(g, "0 4K private") }
        #expect(throws: Errno.permissionDenied) { try contents(f, count: 10) }
        #expect(try run(["ls", "-a", "\(m.path)/.guest"]).output == ".\n..\nf\n")
    }

    @Test func guestWriteIsVisibleToAnExistingHostMapping() throws {
        let m = try GmemMount(["--file", "f:64K:mmap,init-shared", "--guest-view"])
        defer { m.unmount() }
        let py = try Python.run("""
            m = hmap(sys.argv[1], 16)
            check(m[0:4] == b'\\0\\0\\0\\0', 'zeros first')
            g = gopen(sys.argv[2])
            os.pwrite(g, b'abcd', 0)
            a = m[0:4]
            with open(sys.argv[1], 'rb') as h:
                b = h.read(4)
            m[100:104] = b'host'                        # host writes through the mapping...
            c = os.pread(g, 4, 100)                     # ...and the guest sees them
            print(a.decode(), b.decode(), c.decode())
            """, [m.file("f"), m.guest("f")])
        #expect(py.output == "abcd abcd host\n", "\(py.stderr)")
    }
}
