import Foundation
import GmemABI
import GmemTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `.guest/NAME` of an mmap file as a MAP_SHARED mapping (what a VMM hands KVM as a memslot):
/// every page whatever its attribute, and the two views' page caches agreeing at conversions,
/// punches and between them (docs/semantics.md, "The guest view" and "Shared pages between
/// conversions").
@Suite(.serialized, .enabled(if: FUSE.available))
struct GuestMappingTests {
    @Test func guestViewMapsEveryPageAndWithoutMmapStillRefuses() throws {
        let m = try GmemMount(["--file", "f:64K:mmap", "--file", "plain:64K", "--guest-view"])
        defer { m.unmount() }
        let py = try Python.run("""
            g = hmap(sys.argv[1], 16)                  # every page private
            g[0:6] = b'secret'; g[5 * P] = 0x55
            check(g[0:6] == b'secret' and g[5 * P] == 0x55, 'guest mapping reads its stores')
            check(os.pread(gopen(sys.argv[1]), 6, 0) == b'secret', 'guest read(2) agrees')
            try:
                hmap(sys.argv[2], 16); print('mapped')
            except OSError as e:
                print(errno.errorcode[e.errno])
            """, [m.guest("f"), m.guest("plain")])
        #expect(py.output == "ENODEV\n", "\(py.stderr)")
        #expect(throws: Errno.permissionDenied) { try contents(m.file("f"), count: 6) }
    }

    @Test func conversionsCarryMappedStoresBetweenTheViews() throws {
        let m = try GmemMount(["--file", "f:64K:mmap", "--guest-view"])
        defer { m.unmount() }
        let py = try Python.run("""
            h = hmap(sys.argv[1], 16); g = hmap(sys.argv[2], 16)
            g[0:6] = b'secret'                         # dirty in the guest view's cache only
            check(touch(h, 0) == 'SIGBUS', 'private page faults in the host view')
            setattr(sys.argv[1], 0, P, 'shared')       # launders the guest's dirty page first
            check(h[0:6] == b'secret', 'to shared: the host reads the guest mapping stores')
            h[0:6] = b'HOSTED'                         # dirty in the host view's cache only
            setattr(sys.argv[1], 0, P, 'private')
            check(g[0:6] == b'HOSTED', 'to private: the guest reads the host mapping stores')
            check(touch(h, 0) == 'SIGBUS', 'and the host faults again')
            g[P] = 0x77; setattr(sys.argv[1], 0, 2 * P, 'shared'); check(h[P] == 0x77, 'second page')
            fd = os.open(sys.argv[1], os.O_RDWR)
            check(punch(fd, 0, 2 * P) == 0, 'punch through the host view')
            check(g[0:6] == b'\\0' * 6 and h[P] == 0 and g[P] == 0, 'punch zeroes both views')
            g[P] = 0x78
            check(punch(gopen(sys.argv[2]), P, P) == 0, 'punch through the guest view')
            check(h[P] == 0 and g[P] == 0, 'guest punch zeroes both views')
            print('ok')
            """, [m.file("f"), m.guest("f")])
        #expect(py.output == "ok\n", "\(py.stderr)")
    }

    /// docs/semantics.md, "Shared pages between conversions": after the storing side's
    /// msync(MS_SYNC) the other view's next load sees the store, both ways, and a guest-view
    /// write(2) at once. The divergence: without msync a guest store is not promised to the
    /// host's next load (the kernel has one page for both): it sees the old 0, or the 7 when the
    /// kernel's background writeback of the guest's page came first; never anything else.
    @Test func sharedPagesAgreeAfterMsyncAndNotBefore() throws {
        let m = try GmemMount(["--file", "f:64K:mmap,init-shared", "--guest-view"])
        defer { m.unmount() }
        let py = try Python.run("""
            h = hmap(sys.argv[1], 16); g = hmap(sys.argv[2], 16)
            check(h[0] == 0 and g[0] == 0, 'zeros')
            g[0] = 7                                   # dirty in the guest view's cache only
            print('host before msync:', h[0])          # the divergence: the store is not seen yet
            g.flush(0, P)                              # msync(MS_SYNC) of the guest mapping
            check(h[0] == 7, 'host sees the guest store after the guest msync')
            h[1] = 9; h.flush(0, P)
            check(g[1] == 9 and g[0] == 7, 'guest sees the host store after the host msync')
            for i in range(1, 51):                     # a ring: no conversion, msync each way
                g[2] = i; g.flush(0, P); check(h[2] == i, 'ring to host %d' % i)
                h[3] = i; h.flush(0, P); check(g[3] == i, 'ring to guest %d' % i)
            os.pwrite(gopen(sys.argv[2]), b'w', 4)     # guest write(2): the host mapping sees it at once
            check(h[4] == ord('w'), 'host mapping sees guest write(2)')
            fd = os.open(sys.argv[1], os.O_RDWR)
            os.pwrite(fd, b'v', 5); os.fsync(fd)       # host write(2), then fsync
            check(g[5] == ord('v') and os.pread(gopen(sys.argv[2]), 1, 5) == b'v', 'guest sees host write(2)')
            """, [m.file("f"), m.guest("f")])
        #expect(["host before msync: 0\n", "host before msync: 7\n"].contains(py.output), "\(py.output) \(py.stderr)")
        #expect(py.succeeded, "\(py.stderr)")
    }
}

/// A real KVM guest on gmemfs memory: the memslot is a MAP_SHARED mapping of `.guest/NAME`.
/// Enabled where this machine's KVM runs a one-instruction guest (``KVMGuest``); skipped with
/// the probe's reason elsewhere.
@Suite(.serialized, .enabled(if: FUSE.available), .enabled(if: KVMGuest.canRun, Comment(rawValue: KVMGuest.unavailableReason ?? "")))
struct GuestVMTests {
    /// docs/examples/confidential_vm.c, "direct mode": the guest's secret in a private page, the
    /// host's pread EACCES and load SIGBUS, then the same secret after an in-place conversion.
    @Test func confidentialVMRevealsItsSecretOnlyAfterConversion() throws {
        let binary = try KVMGuest.example.get()
        let m = try GmemMount(["--guest-view"])
        defer { m.unmount() }
        let r = try run([binary, m.path, "vm"], timeout: 60)
        #expect(r.output == """
            guest wrote to port 0x3f8: hunter2
            host pread of page 0x2000: Permission denied
            host load from its mapping of page 0x2000: SIGBUS
            converted page 0x2000 to shared in place
            host reads through its mapping: hunter2
            ok

            """, "\(r)")
        #expect(r.succeeded, "\(r)")
        #expect(attributes(m.file("vm")).contains("2000-3000 shared"))
    }

    /// docs/examples/confidential_vm_gmem.c, unmodified under `gmemctl run` on the real KVM:
    /// KVM_CREATE_GUEST_MEMFD, the memslot with KVM_MEM_GUEST_MEMFD (bound by `run` in the
    /// VMM's own address space), the guest's secret in a private page, the VMM's SIGBUS, then
    /// the secret after an in-place conversion.
    @Test(.enabled(if: SeccompSupport.userNotification, "needs seccomp user notification"))
    func confidentialVMInGuestMemfdModeUnderRun() throws {
        let binary = try KVMGuest.guestMemfdExample.get()
        let r = try run([RunTests.gmemctl, "run", "--", binary], timeout: 120)
        #expect(r.output == """
            memslot 0: guest_memfd, 64 KiB, every page private
            guest wrote to port 0x3f8: hunter2
            host load from its mapping of page 0x2000: SIGBUS
            converted page 0x2000 to shared in place
            host reads through its mapping: hunter2
            ok

            """, "\(r)")
        #expect(r.succeeded && r.stderr.isEmpty, "\(r)")
    }

    /// A memslot without KVM_MEM_GUEST_MEMFD (KVM_SET_USER_MEMORY_REGION2 on anonymous memory)
    /// still runs a guest under `run`: the real KVM gets it unchanged.
    @Test(.enabled(if: SeccompSupport.userNotification, "needs seccomp user notification"))
    func plainMemslotUnderRunRunsAGuest() throws {
        let binary = try KVMGuest.guestMemfdExample.get()
        let r = try run([RunTests.gmemctl, "run", "--", binary, "--plain"], timeout: 120)
        #expect(r.output == "guest wrote to port 0x3f8: hunter2\n", "\(r)")
        #expect(r.succeeded && r.stderr.isEmpty, "\(r)")
    }

    /// A ring page between a running guest and its VMM, no conversion: guest → host → guest,
    /// each side's stores followed by msync(MS_SYNC) of its own mapping.
    @Test func sharedRingBetweenGuestAndVMM() throws {
        let dir = try makeTemporaryDirectory("gmem-ring")
        let binary = try CProgram.compile("guest_ring.c", to: dir + "/guest_ring", flags: ["-std=gnu11", "-Wall", "-Wextra", "-Werror"])
        let m = try GmemMount(["--guest-view"])
        defer { m.unmount() }
        let r = try run([binary, m.path, "ring"], timeout: 60)
        #expect(r.output == "host saw G, guest saw H\n", "\(r)")
        #expect(r.succeeded, "\(r)")
    }
}
