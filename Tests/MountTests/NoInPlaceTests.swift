import Foundation
import GmemABI
import GmemTestSupport
import Testing

/// `--no-in-place` (`-o no_in_place`): a kernel whose `kvm.gmem_in_place_conversion` is off.
/// The conversion ioctl fails with ENOTTY (from Python, struct untouched), the xattr with
/// EOPNOTSUPP (setfattr), nothing converts, and everything else works as usual.
@Suite(.serialized, .enabled(if: FUSE.available))
struct NoInPlaceTests {
    static let ioctlScript = """
        import fcntl, struct
        fd = os.open(sys.argv[1], os.O_RDWR)
        ro = os.open(sys.argv[1], os.O_RDONLY)
        def call(f, offset, size, attributes, flags=0, error_offset=0):
            arg = bytearray(struct.pack('<5Q', offset, size, attributes, flags, error_offset) + bytes(88))
            before = bytes(arg)
            try:
                fcntl.ioctl(f, KVM_SET_MEMORY_ATTRIBUTES2, arg, True)
                result = 'ok'
            except OSError as e:
                result = errno.errorcode[e.errno]
            print(result, 'unchanged' if bytes(arg) == before else 'changed')
        call(fd, 0, P, 8)                  # a valid to-private request
        call(fd, 0, P, 0)                  # already shared
        call(fd, 1, P, 0, flags=1)         # invalid in every field
        call(ro, 0, P, 8)                  # read-only descriptor
        call(fd, 0, P, 8, error_offset=7)  # input error_offset
        """

    @Test(arguments: [["--no-in-place"], ["-o", "no_in_place"]])
    func conversionsAnswerAsAKernelWithoutInPlaceConversion(option: [String]) throws {
        let m = try GmemMount(["--file", "f:64K:mmap,init-shared"] + option)
        defer { m.unmount() }
        let f = m.file("f")
        let r = try Python.run(Self.ioctlScript, [f])
        #expect(r.succeeded, "\(r)")
        #expect(r.output == String(repeating: "ENOTTY unchanged\n", count: 5))
        let set = try run(["setfattr", "-n", GmemXattr.setAttributes, "-v", "0 4096 private", f])
        #expect(!set.succeeded && set.stderr.contains("Operation not supported"), "\(set)")
        #expect(try Sys.getxattr(f, GmemXattr.attributes) == "0-10000 shared\n")
        // Everything else is unchanged: I/O, the map, pins' own ioctl, injection.
        #expect(try run(["dd", "if=/dev/zero", "of=\(f)", "bs=4096", "count=2", "conv=notrunc", "status=none"]).succeeded)
        #expect(try run(["setfattr", "-n", GmemXattr.inject, "-v", "enomem", f]).succeeded)
        #expect(try Sys.getxattr(f, GmemXattr.stats).contains("conversions=0\n"))
        #expect(m.log.contains("refused ioctl KVM_SET_MEMORY_ATTRIBUTES2"))
        #expect(m.unmount() == 0)
    }
}
