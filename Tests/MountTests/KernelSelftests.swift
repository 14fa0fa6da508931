import Foundation
import GmemABI
import GmemTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Ports of the kernel's `tools/testing/selftests/kvm/guest_memfd_test.c` (see
/// docs/selftests.md for the mapping and the divergences). The kernel's guest_memfd is
/// `MNT/NAME` here, `KVM_CREATE_GUEST_MEMFD` is `user.gmem.create` on the mount root.
@Suite(.serialized, .enabled(if: FUSE.available))
struct GuestMemfdSelftests {
    /// The flag sets `main` iterates over: 0, MMAP, MMAP|INIT_SHARED.
    static let flagSets = ["", "mmap", "mmap,init-shared"]
    static let p = page

    /// One mount with a 4-page file `g<i>` per flag set (the `gmem_test` macro's setup).
    func mountPerFlagSet(_ extra: [String] = []) throws -> GmemMount {
        var args: [String] = []
        for (i, flags) in Self.flagSets.enumerated() { args += ["--file", "g\(i):16K" + (flags.isEmpty ? "" : ":\(flags)")] }
        return try GmemMount(args + extra)
    }

    /// test_guest_memfd_flags: every single bit; bits 0 (MMAP) and 1 (INIT_SHARED) are
    /// supported, every other bit is EINVAL.
    @Test func test_guest_memfd_flags() throws {
        let m = try GmemMount(["--file", "x:4K"])
        defer { m.unmount() }
        for bit in 0..<64 {
            let flag = UInt64(1) << UInt64(bit)
            let rc = failure { try Sys.setxattr(m.path, GmemXattr.create, "f\(bit) 4096 \(flag)") }
            #expect(rc == (bit < 2 ? nil : .invalidArgument), "bit \(bit)")
        }
        #expect(stats(m.path)[.files] == "3")
        #expect((try? Sys.getxattr(m.file("f0"), GmemXattr.flags)) == "mmap")
        #expect((try? Sys.getxattr(m.file("f1"), GmemXattr.flags)) == "init-shared")
    }

    /// test_create_guest_memfd_multiple: sizes p and 2p, distinct inodes, the first unchanged.
    @Test func test_create_guest_memfd_multiple() throws {
        let m = try GmemMount(["--file", "x:4K"])
        defer { m.unmount() }
        for (i, flags) in ["0", "1", "3"].enumerated() {
            #expect(throws: Never.self) { try Sys.setxattr(m.path, GmemXattr.create, "a\(i) \(Self.p) \(flags)") }
            let st1 = try #require((try? Sys.stat(m.file("a\(i)"))))
            #expect(throws: Never.self) { try Sys.setxattr(m.path, GmemXattr.create, "b\(i) \(2 * Self.p) \(flags)") }
            let st2 = try #require((try? Sys.stat(m.file("b\(i)"))))
            #expect(st1.st_size == Self.p)
            #expect(st2.st_size == 2 * Self.p)
            #expect((try? Sys.stat(m.file("a\(i)")))?.st_size == Self.p)
            #expect(st1.st_ino != st2.st_ino)
        }
    }

    /// test_create_guest_memfd_invalid_sizes: every size 1 ... p-1 is EINVAL, for every flag set.
    @Test func test_create_guest_memfd_invalid_sizes() throws {
        let m = try GmemMount(["--file", "x:4K"])
        defer { m.unmount() }
        var failures: [String] = []
        for flags in ["0", "1", "3"] {
            for size in 1..<Self.p {
                let rc = failure { try Sys.setxattr(m.path, GmemXattr.create, "s \(size) \(flags)") }
                if rc != .invalidArgument { failures.append("size \(size) flags \(flags): \(rc.map(\.description) ?? "success")") }
            }
        }
        #expect(failures.isEmpty, "\(failures.prefix(5))")
        #expect(stats(m.path)[.files] == "1")
    }

    /// test_file_read_write — DIVERGENCE: the kernel refuses read/write on guest_memfd
    /// outright; we refuse them on private pages (EACCES) and allow them on shared pages.
    @Test func test_file_read_write() throws {
        let m = try mountPerFlagSet()
        defer { m.unmount() }
        for (i, flags) in Self.flagSets.enumerated() {
            let shared = flags.contains("init-shared")
            try Sys.withFD(m.file("g\(i)"), O_RDWR) { fd in
                var buf = [UInt8](repeating: 0x5a, count: 64)
                let r = Glibc.read(fd.rawValue, &buf, 64)
                #expect(shared ? r == 64 : (r == -1 && errno == EACCES), "read \(flags)")
                let w = Glibc.write(fd.rawValue, buf, 64)
                #expect(shared ? w == 64 : (w == -1 && errno == EACCES), "write \(flags)")
                #expect(shared ? (try? Sys.pread(fd, count: 64, offset: 0))?.count == 64 : failure { try Sys.pread(fd, count: 64, offset: 0) } == .permissionDenied)
                #expect(shared ? (try? Sys.pwrite(fd, buf, offset: 0)) == 64 : failure { try Sys.pwrite(fd, buf, offset: 0) } == .permissionDenied)
            }
        }
    }

    /// test_file_size: st_size 4p, st_blksize p.
    @Test func test_file_size() throws {
        let m = try mountPerFlagSet()
        defer { m.unmount() }
        for i in Self.flagSets.indices {
            let st = try #require((try? Sys.stat(m.file("g\(i)"))))
            #expect(st.st_size == 4 * Self.p)
            #expect(st.st_blksize == Self.p)
        }
    }

    /// test_mmap_supported: MAP_SHARED of an init-shared file; punching page 0 zeroes only it.
    @Test func test_mmap_supported() throws {
        let m = try mountPerFlagSet()
        defer { m.unmount() }
        let py = try Python.run("""
            m = hmap(sys.argv[1], 4)
            m[:] = b'\\xaa' * (4 * P)
            check(m[:] == b'\\xaa' * (4 * P), 'memset 0xaa')
            fd = os.open(sys.argv[1], os.O_RDWR)
            check(punch(fd, 0, P) == 0, 'punch page 0')
            check(m[:P] == b'\\0' * P, 'page 0 zeroed')
            check(m[P:] == b'\\xaa' * (3 * P), 'pages 1-3 kept')
            m[:P] = b'\\xaa' * P
            check(m[:] == b'\\xaa' * (4 * P), 'memset page 0 again')
            m.close()
            print('ok')
            """, [m.file("g2")])
        #expect(py.output == "ok\n", "\(py.stderr)")
    }

    /// test_fault_overflow: mmap(16p) of a 4p file succeeds; memset SIGBUSes past EOF and a
    /// read of mem[4p] SIGBUSes; [0, 4p) holds 0xaa afterwards.
    @Test func test_fault_overflow() throws {
        let m = try mountPerFlagSet()
        defer { m.unmount() }
        let py = try Python.run("""
            import ctypes
            m = rawmap(sys.argv[1], 16 * P)
            pid = os.fork()
            if pid == 0:
                ctypes.memset(ctypes.addressof(m), 0xaa, 16 * P)
                os._exit(0)
            _, st = os.waitpid(pid, 0)
            check(os.WIFSIGNALED(st) and os.WTERMSIG(st) == signal.SIGBUS, 'memset 16p: status %d' % st)
            check(touch(m, 4 * P) == 'SIGBUS', 'read mem[4p]')
            check(bytes(m[:4 * P]) == b'\\xaa' * (4 * P), 'first 4 pages hold 0xaa')
            print('ok')
            """, [m.file("g2")])
        #expect(py.output == "ok\n", "\(py.stderr)")
    }

    /// test_fault_private: with MMAP but not INIT_SHARED every page is private: the first write
    /// and a read of mem[0] SIGBUS.
    @Test func test_fault_private() throws {
        let m = try mountPerFlagSet()
        defer { m.unmount() }
        let py = try Python.run("""
            import ctypes
            m = hmap(sys.argv[1], 4)
            pid = os.fork()
            if pid == 0:
                ctypes.memset(ctypes.addressof(ctypes.c_char.from_buffer(m)), 0xaa, 4 * P)
                os._exit(0)
            _, st = os.waitpid(pid, 0)
            check(os.WIFSIGNALED(st) and os.WTERMSIG(st) == signal.SIGBUS, 'memset: status %d' % st)
            print(touch(m, 0), touch(m, 3 * P))
            """, [m.file("g1")])
        #expect(py.output == "SIGBUS SIGBUS\n", "\(py.stderr)")
    }

    /// test_mmap_not_supported: without MMAP, MAP_SHARED of p and 4p fails (ENODEV).
    @Test func test_mmap_not_supported() throws {
        let m = try mountPerFlagSet()
        defer { m.unmount() }
        try Sys.withFD(m.file("g0"), O_RDWR) { fd in
            for length in [Self.p, 4 * Self.p] {
                let addr = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd.rawValue, 0)
                #expect(addr == MAP_FAILED)
                #expect(errno == ENODEV)
            }
        }
    }

    /// test_mmap_cow — DIVERGENCE: the kernel refuses MAP_PRIVATE (EINVAL). A FUSE file system
    /// is never asked about mmap, so MAP_PRIVATE succeeds: it is a copy-on-write snapshot that
    /// obeys the attributes when it faults (shared pages read, private pages SIGBUS), and its
    /// writes never reach the file.
    @Test func test_mmap_cow() throws {
        let m = try mountPerFlagSet()
        defer { m.unmount() }
        #expect((try? write(m.file("g2"), Array("shared!".utf8), at: 0)) == 7)
        #expect(throws: Never.self) { try convert(m.file("g2"), "8K 8K private") }
        let py = try Python.run("""
            out = []
            for path in sys.argv[1:]:
                try:
                    m = rawmap(path, 4 * P, 0x02)   # MAP_PRIVATE
                except OSError as e:
                    out.append(errno.errorcode[e.errno]); continue
                out.append('%s/%s/%s/%s' % (touch(m, 0), touch(m, 8192), touch(m, 0, 0x21), touch(m, 3 * P)))
            print(' '.join(out))
            """, [m.file("g1"), m.file("g2"), m.file("g0")])
        // g1 (all private): faults SIGBUS. g2 (pages 0-1 shared): page 0 reads 's', the write is
        // private to the child. g0 (no MMAP, direct_io): the kernel's FUSE allows MAP_PRIVATE
        // there too, and faults read through the same rules.
        #expect(py.output == "SIGBUS/SIGBUS/SIGBUS/SIGBUS 115/SIGBUS/0/SIGBUS SIGBUS/SIGBUS/SIGBUS/SIGBUS\n", "\(py.stderr)")
        #expect((try? contents(m.file("g2"), count: 7)) == Array("shared!".utf8))
    }

    /// test_fallocate: the kernel's table, for every flag set.
    @Test func test_fallocate() throws {
        let m = try mountPerFlagSet()
        defer { m.unmount() }
        let p = Self.p, keep = Falloc.keepSize, punch = Falloc.keepSize | Falloc.punchHole
        for i in Self.flagSets.indices {
            try Sys.withFD(m.file("g\(i)"), O_RDWR) { fd in
                #expect(throws: Never.self) { try Sys.fallocate(fd, mode: keep, offset: 0, length: 4 * p) }
                #expect(throws: Errno.self) { try Sys.fallocate(fd, mode: punch, offset: p - 1, length: p) }
                #expect(throws: Errno.self) { try Sys.fallocate(fd, mode: keep, offset: 4 * p, length: p) }
                #expect(throws: Errno.self) { try Sys.fallocate(fd, mode: keep, offset: 5 * p, length: p) }
                #expect(throws: Never.self) { try Sys.fallocate(fd, mode: punch, offset: 4 * p, length: p) }
                #expect(throws: Never.self) { try Sys.fallocate(fd, mode: punch, offset: 5 * p, length: p) }
                #expect(throws: Errno.self) { try Sys.fallocate(fd, mode: punch, offset: p, length: p - 1) }
                #expect(throws: Never.self) { try Sys.fallocate(fd, mode: punch, offset: p, length: p) }
                #expect(throws: Never.self) { try Sys.fallocate(fd, mode: keep, offset: p, length: p) }
            }
            #expect(stats(m.file("g\(i)"))[.allocatedBytes] == String(4 * p))
        }
    }

    /// test_invalid_punch_hole: the ten unaligned (offset, len) pairs are EINVAL.
    @Test func test_invalid_punch_hole() throws {
        let m = try mountPerFlagSet()
        defer { m.unmount() }
        let p = Self.p
        let pairs = [(0, 1), (0, p - 1), (0, p + 1), (1, 1), (1, p - 1), (1, p), (1, p + 1), (p, 1), (p, p - 1), (p, p + 1)]
        for i in Self.flagSets.indices {
            try Sys.withFD(m.file("g\(i)"), O_RDWR) { fd in
                for (offset, length) in pairs {
                    #expect(throws: Errno.invalidArgument, "(\(offset), \(length))") { try Sys.fallocate(fd, mode: Falloc.keepSize | Falloc.punchHole, offset: offset, length: length) }
                }
            }
        }
    }

    /// test_guest_memfd_guest: a 1-page MMAP|INIT_SHARED file; the host memsets 0xaa and
    /// unmaps, the guest (the guest view) checks 0xaa and writes 0xff, the host remaps and
    /// sees 0xff.
    @Test func test_guest_memfd_guest() throws {
        let m = try GmemMount(["--file", "x:4K", "--guest-view"])
        defer { m.unmount() }
        #expect(throws: Never.self) { try Sys.setxattr(m.path, GmemXattr.create, "g 4096 3") }
        let py = try Python.run("""
            m = hmap(sys.argv[1], 1)
            m[:] = b'\\xaa' * P
            m.close()
            g = gopen(sys.argv[2])
            check(os.pread(g, P, 0) == b'\\xaa' * P, 'guest sees 0xaa')
            check(os.pwrite(g, b'\\xff' * P, 0) == P, 'guest writes 0xff')
            m = hmap(sys.argv[1], 1)
            check(m[:] == b'\\xff' * P, 'host sees 0xff')
            print('ok')
            """, [m.file("g"), m.guest("g")])
        #expect(py.output == "ok\n", "\(py.stderr)")
    }
}

/// Ports of `tools/testing/selftests/kvm/x86/guest_memfd_conversions_test.c`. The host view is a
/// MAP_SHARED mapping of `MNT/NAME`; the guest's `guest_do_rmw` is pread/pwrite on
/// `MNT/.guest/NAME`; `gmem_set_private/shared` is `user.gmem.set_attributes`. The primitives
/// (`test_private`, `test_shared`, `to_private`, `to_shared`) are in the Python prelude (`GmemTestSupport/Resources/prelude.py`).
@Suite(.serialized, .enabled(if: FUSE.available))
struct GuestMemfdConversionsSelftests {
    /// Creates `name` with `pages` pages (MMAP plus `extra` flags) and runs `script` with the
    /// context `t`; more files can be passed as `(name, pages)` and are `ts[i]`.
    func conversions(_ files: [(String, Int)], initShared: Bool, _ script: String,
                     sourceLocation: SourceLocation = #_sourceLocation) throws -> GmemMount {
        let m = try GmemMount(["--file", "x:4K", "--guest-view"])
        for (name, pages) in files {
            #expect(throws: Never.self, sourceLocation: sourceLocation) { try Sys.setxattr(m.path, GmemXattr.create, "\(name) \(pages * page) \(initShared ? 3 : 1)") }
        }
        let args = files.flatMap { [m.file($0.0), m.guest($0.0), String($0.1)] }
        let py = try Python.run("""
            ts = [T(sys.argv[i], sys.argv[i + 1], int(sys.argv[i + 2])) for i in range(1, len(sys.argv), 3)]
            t = ts[0]
            A, B, C, D, E = (ord(c) for c in 'ABCDE')
            """ + "\n" + script + "\nprint('ok')\n", args)
        #expect(py.output == "ok\n", "\(py.stderr)", sourceLocation: sourceLocation)
        return m
    }

    @Test func init_private() throws {
        let m = try conversions([("g", 1)], initShared: false, """
            test_private(t, 0, 0, A)
            to_shared(t, 0, A, B, C)
            to_private(t, 0, C, E)
            """)
        defer { m.unmount() }
        #expect(attributes(m.file("g")) == "0-1000 private\n")
    }

    @Test func init_shared() throws {
        let m = try conversions([("g", 1)], initShared: true, """
            test_shared(t, 0, 0, A, B)
            to_private(t, 0, B, C)
            to_shared(t, 0, C, D, E)
            """)
        defer { m.unmount() }
        #expect(attributes(m.file("g")) == "0-1000 shared\n")
        #expect((try? contents(m.file("g"), count: 1)) == [UInt8(ascii: "E")])
    }

    /// Repeated for test_page 0...3, each with a fresh file.
    @Test func indexing() throws {
        let m = try conversions((0..<4).map { ("g\($0)", 4) }, initShared: true, """
            f = lambda x, v: (x << 4) + v
            for tp, t in enumerate(ts):
                for i in range(3, -1, -1):
                    test_shared(t, i, 0, f(i, 0), f(i, 2))
                to_private(t, tp, f(tp, 2), f(tp, 3))
                for i in range(4):
                    if i == tp:
                        test_private(t, i, f(i, 3), f(i, 4))
                    else:
                        test_shared(t, i, f(i, 2), f(i, 3), f(i, 4))
                to_shared(t, tp, f(tp, 4), f(tp, 5), f(tp, 6))
                for i in range(4):
                    test_shared(t, i, f(i, 6) if i == tp else f(i, 4), f(i, 7), f(i, 8))
            """)
        defer { m.unmount() }
        for tp in 0..<4 {
            #expect(attributes(m.file("g\(tp)")) == "0-4000 shared\n")
            #expect(stats(m.file("g\(tp)"))[.conversions] == "2")
        }
    }

    @Test func before_allocation_shared() throws {
        let m = try GmemMount(["--file", "g:4K:mmap,init-shared", "--guest-view"])
        defer { m.unmount() }
        #expect(stats(m.file("g"))[.allocatedBytes] == "0")
        let py = try Python.run("""
            t = T(sys.argv[1], sys.argv[2], 1)
            to_private(t, 0, 0, ord('A'))
            print('ok')
            """, [m.file("g"), m.guest("g")])
        #expect(py.output == "ok\n", "\(py.stderr)")
        #expect(attributes(m.file("g")) == "0-1000 private\n")
    }

    @Test func before_allocation_private() throws {
        let m = try GmemMount(["--file", "g:4K:mmap", "--guest-view"])
        defer { m.unmount() }
        #expect(stats(m.file("g"))[.allocatedBytes] == "0")
        let py = try Python.run("""
            t = T(sys.argv[1], sys.argv[2], 1)
            to_shared(t, 0, 0, ord('A'), ord('B'))
            print('ok')
            """, [m.file("g"), m.guest("g")])
        #expect(py.output == "ok\n", "\(py.stderr)")
        #expect(attributes(m.file("g")) == "0-1000 shared\n")
    }

    /// 8 pages, repeated for test_page 0...7: allocate test_page and page 4, convert all 8 to
    /// private in one request, then check and convert back page by page.
    @Test func unallocated_folios() throws {
        let m = try conversions((0..<8).map { ("g\($0)", 8) }, initShared: true, """
            for tp, t in enumerate(ts):
                hrmw(t.m, tp, 0, A)
                if tp != 4:
                    hrmw(t.m, 4, 0, A)
                setattr(t.host, 0, 8 * P, 'private')
                for i in range(8):
                    test_private(t, i, A if i in (tp, 4) else 0, B)
                for i in range(8):
                    to_shared(t, i, B, C, D)
            """)
        defer { m.unmount() }
        for tp in 0..<8 {
            #expect(attributes(m.file("g\(tp)")) == "0-8000 shared\n")
            #expect(stats(m.file("g\(tp)"))[.allocatedBytes] == String(8 * page))
        }
    }

    /// PUNCH_HOLE keeps the attribute and zeroes the page, shared or private.
    @Test func truncate() throws {
        let m = try conversions([("g", 1)], initShared: true, """
            fd = os.open(t.host, os.O_RDWR)
            hrmw(t.m, 0, 0, A)
            check(punch(fd, 0, P) == 0, 'punch shared')
            hrmw(t.m, 0, 0, A)
            to_private(t, 0, A, B)
            check(punch(fd, 0, P) == 0, 'punch private')
            test_private(t, 0, 0, A)
            """)
        defer { m.unmount() }
        #expect(attributes(m.file("g")) == "0-1000 private\n")
    }

    /// The child's existing mapping SIGBUSes (read and write) after the parent converts.
    @Test func forked_accesses() throws {
        let m = try conversions([("g", 1)], initShared: true, """
            test_shared(t, 0, 0, 0xA, 0xB)
            r1, w1 = os.pipe(); r2, w2 = os.pipe()
            pid = os.fork()
            if pid == 0:
                v = t.m[0]; t.m[0] = 0xC                  # host_do_rmw in the child: maps the page
                os.write(w1, bytes([v])); os.read(r2, 1)
                res = (touch(t.m, 0), touch(t.m, 0, 0xD))
                os.write(w1, repr(res).encode())
                t.m[0]                                   # the child's own access: SIGBUS
                os._exit(0)
            check(os.read(r1, 1) == b'\\x0b', 'child read 0xB')
            to_private(t, 0, 0xC, 0xD)
            os.write(w2, b'x')
            res = os.read(r1, 100).decode()
            check(res == "('SIGBUS', 'SIGBUS')", 'child touches: ' + res)
            _, st = os.waitpid(pid, 0)
            check(os.WIFSIGNALED(st) and os.WTERMSIG(st) == signal.SIGBUS, 'child status %d' % st)
            """)
        m.unmount()
    }

    /// test_page 0...3, each with a fresh 4-page file: a reference on test_page (the kernel pins
    /// it with gup_test's PIN_LONGTERM_TEST_START; here GMEM_PIN_PAGES on an open fd) refuses the
    /// bulk to-private conversion with EAGAIN and error_offset == test_page * p, and only that
    /// page's own conversion; once unpinned, the bulk conversion succeeds and contents are kept.
    /// `__gmem_set_private` is KVM_SET_MEMORY_ATTRIBUTES2, its struct copied back on failure.
    @Test func elevated_refcount() throws {
        let m = try conversions((0..<4).map { ("g\($0)", 4) }, initShared: true, """
            import fcntl, struct
            def pin_pages(fd, off, size, unpin=False):
                fcntl.ioctl(fd, GMEM_UNPIN_PAGES if unpin else GMEM_PIN_PAGES, struct.pack('<8Q', off, size, 0, 0, 0, 0, 0, 0))
            def gmem_set_private(fd, off, size):
                # __gmem_set_memory_attributes: (0 or errno, error_offset copied back)
                buf = bytearray(struct.pack('<16Q', *([off, size, 8] + [0] * 13)))
                try:
                    fcntl.ioctl(fd, KVM_SET_MEMORY_ATTRIBUTES2, buf, True)
                    return 0, struct.unpack_from('<Q', buf, 32)[0]
                except OSError as e:
                    return e.errno, struct.unpack_from('<Q', buf, 32)[0]
            for tp, t in enumerate(ts):
                fd = os.open(t.host, os.O_RDWR)
                pin_fd = os.open(t.host, os.O_RDONLY)
                pin_pages(pin_fd, tp * P, P)
                for i in range(4):
                    test_shared(t, i, 0, A, B)
                r = gmem_set_private(fd, 0, 4 * P)
                check(r == (errno.EAGAIN, tp * P), 'bulk to private with page %d pinned: %r' % (tp, r))
                for i in range(4):
                    if i == tp:
                        r = gmem_set_private(fd, i * P, P)
                        check(r == (errno.EAGAIN, tp * P), 'page %d alone: %r' % (i, r))
                    else:
                        to_private(t, i, B, C)
                pin_pages(pin_fd, tp * P, P, unpin=True)
                check(gmem_set_private(fd, 0, 4 * P) == (0, 0), 'bulk to private after unpin')
                for i in range(4):
                    test_private(t, i, B if i == tp else C, D)
                os.close(pin_fd)
                os.close(fd)
            """)
        defer { m.unmount() }
        for tp in 0..<4 {
            #expect(attributes(m.file("g\(tp)")) == "0-4000 private\n")
            let s = stats(m.file("g\(tp)"))
            // Two refusals (bulk and test_page alone); three single pages and the final bulk.
            #expect(s[.eagainRefusals] == "2")
            #expect(s[.conversions] == "4")
        }
    }
}
