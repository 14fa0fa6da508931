import Foundation
import GmemABI
import GmemTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The xattr interface of a gmem file: set_attributes, the attribute listing (whole and
/// windowed), flags, stats, listxattr and the errors of unknown names.
@Suite(.serialized, .enabled(if: FUSE.available))
struct XattrTests {
    @Test func setAttributesRejectsMalformedValuesWithEINVALAndChangesNothing() throws {
        let m = try GmemMount(["--file", "f:64K:mmap"])
        defer { m.unmount() }
        let f = m.file("f")
        #expect(throws: Never.self) { try convert(f, "0 8K shared") }
        #expect(try run(["dd", "if=/dev/urandom", "of=\(f)", "bs=4096", "count=2", "conv=notrunc", "status=none"]).succeeded)
        let before = attributes(f)
        #expect(before == "0-2000 shared\n2000-10000 private\n")
        let data = (try? contents(f, count: 8192))
        let stats0 = stats(f)
        #expect(stats0[.conversions] == "1")
        let bad = [
            "0 4096",                              // missing field
            "0 4096 shared extra",                 // extra field
            "0 0 shared",                          // size 0
            "1 4096 shared",                       // unaligned offset
            "0 4097 shared",                       // unaligned size
            "4096 100 private",                    // unaligned size
            "0xfffffffffffff000 0x2000 shared",    // offset + size overflows
            "0x10000000000000000 4096 shared",     // number overflows 64 bits
            "64K 4K shared",                       // at EOF
            "60K 8K private",                      // crosses EOF
            "0 1G private",                        // beyond EOF
            "0 4096 16",                           // unknown attribute bit
            "0 4096 9",                            // private plus an unknown bit
            "0 4096 0x1",                          // unknown bit 0
            "0 4096 sharedx",                      // unknown attribute word
            "garbage",
            "",
            "   ",
            "-4096 4096 shared",                   // negative
            "0 4096 shared\u{1}",                  // control character
            "0 4Q shared",                         // bad suffix
            "0x 4096 shared",                      // empty hex
        ]
        for value in bad {
            #expect(throws: Errno.invalidArgument, "value \(value.debugDescription)") { try convert(f, value) }
        }
        #expect(throws: Errno.invalidArgument, "invalid UTF-8") { try Sys.setxattr(f, GmemXattr.setAttributes, bytes: [0xff, 0xfe, 0x20]) }
        #expect(attributes(f) == before)
        #expect((try? contents(f, count: 8192)) == data)
        #expect(stats(f)[.conversions] == "1")
        #expect(stats(f)[.privateBytes] == String(56 * 1024))
        // The tool reports the same error.
        let tool = try run(["setfattr", "-n", GmemXattr.setAttributes, "-v", "0 1 shared", f])
        #expect(tool.status == 1)
        #expect(tool.stderr.contains("Invalid argument"))
        #expect(attributes(f) == before)
    }

    @Test func setAttributesAcceptsNumberFormats() throws {
        let m = try GmemMount(["--file", "f:64K:mmap"])
        defer { m.unmount() }
        let f = m.file("f")
        #expect(throws: Never.self) { try convert(f, "0x1000 4K 0") }
        #expect(attributes(f) == "0-1000 private\n1000-2000 shared\n2000-10000 private\n")
        #expect(throws: Never.self) { try convert(f, "8192 0x1000 0") }
        #expect(attributes(f) == "0-1000 private\n1000-3000 shared\n3000-10000 private\n")
        #expect(throws: Never.self) { try convert(f, "0 64KiB SHARED") }
        #expect(attributes(f) == "0-10000 shared\n")
        #expect(throws: Never.self) { try convert(f, "0x8000\t0x8000 8\n") }
        #expect(attributes(f) == "0-8000 shared\n8000-10000 private\n")
        // setfattr decodes a value starting with 0x as hex bytes; quoted it is text.
        #expect(try run(["setfattr", "-n", GmemXattr.setAttributes, "-v", "\"0x0 0x4000 private\"", f]).succeeded)
        #expect(attributes(f) == "0-4000 private\n4000-8000 shared\n8000-10000 private\n")
        // A trailing NUL (as some tools send) is accepted.
        #expect(throws: Never.self) { try Sys.setxattr(f, GmemXattr.setAttributes, bytes: Array("0 64K private".utf8) + [0]) }
        #expect(attributes(f) == "0-10000 private\n")
        // Converting to the current state changes nothing and is not counted.
        let conversions = stats(f)[.conversions]
        #expect(throws: Never.self) { try convert(f, "0 4K private") }
        #expect(stats(f)[.conversions] == conversions)
    }

    @Test func attributesListingWindowedForm() throws {
        let m = try GmemMount(["--file", "f:64K:mmap"])
        defer { m.unmount() }
        let f = m.file("f")
        #expect(throws: Never.self) { try convert(f, "4K 8K shared") }
        #expect(throws: Never.self) { try convert(f, "32K 4K shared") }
        #expect(attributes(f) == "0-1000 private\n1000-3000 shared\n3000-8000 private\n8000-9000 shared\n9000-10000 private\n")
        // The window is clipped to the requested range and to the file.
        #expect((try? Sys.getxattr(f, GmemXattr.attributes + ":2000-8800")) == "2000-3000 shared\n3000-8000 private\n8000-8800 shared\n")
        #expect((try? Sys.getxattr(f, GmemXattr.attributes + ":0-1")) == "0-1 private\n")
        #expect((try? Sys.getxattr(f, GmemXattr.attributes + ":f000-100000")) == "f000-10000 private\n")
        #expect((try? Sys.getxattr(f, GmemXattr.attributes + ":20000-30000")) == "")
        // getfattr sees the same.
        let tool = try run(["getfattr", "--only-values", "-n", GmemXattr.attributes + ":1000-2000", f])
        #expect(tool.output == "1000-2000 shared\n")
        // Malformed windows are names that do not exist.
        for bad in [GmemXattr.attributes + ":", GmemXattr.attributes + ":10-10", GmemXattr.attributes + ":20-10",
                    GmemXattr.attributes + ":0x0-10", GmemXattr.attributes + ":g-10", GmemXattr.attributes + ":0-10-20",
                    GmemXattr.attributes + ":+0-+10", GmemXattr.attributes + ":0-+10", GmemXattr.attributes + ":0-1000000000000000000"] {
            #expect(throws: Errno.noData, "\(bad)") { try Sys.getxattr(f, bad) }
        }
    }

    @Test func attributesPast64KiBIsE2BIGAndWindowsStillWork() throws {
        // 4096 pages, every other one converted: 4096 ranges of ~20 bytes each > 64 KiB.
        let m = try GmemMount(["--file", "big:16M:mmap"])
        defer { m.unmount() }
        let f = m.file("big")
        let py = try Python.run("""
            for pg in range(0, 4096, 2):
                setattr(sys.argv[1], pg * P, P, 'shared')
            """, [f])
        #expect(py.succeeded, "\(py.stderr)")
        #expect(stats(f)[.ranges] == "4096")
        #expect(throws: Errno.argListTooLong) { try Sys.getxattr(f, GmemXattr.attributes) }
        // The daemon's log names the windowed form that works.
        #expect(m.log.contains(GmemXattr.attributes + ":START-END"), "\(m.log)")
        let tool = try run(["getfattr", "--only-values", "-n", GmemXattr.attributes, f])
        #expect(!tool.succeeded)
        #expect((try? Sys.getxattr(f, GmemXattr.attributes + ":0-4000")) == "0-1000 shared\n1000-2000 private\n2000-3000 shared\n3000-4000 private\n")
        #expect((try? Sys.getxattr(f, GmemXattr.attributes + ":ffe000-1000000")) == "ffe000-fff000 shared\nfff000-1000000 private\n")
        // Merging back shrinks it again.
        #expect(throws: Never.self) { try convert(f, "0 16M shared") }
        #expect(attributes(f) == "0-1000000 shared\n")
    }

    @Test func flagsStatsAndListxattr() throws {
        let m = try GmemMount(["--file", "a:64K", "--file", "b:64K:mmap", "--file", "c:64K:mmap,init-shared", "--max-memory", "1M"])
        defer { m.unmount() }
        #expect((try? Sys.getxattr(m.file("a"), GmemXattr.flags)) == "")
        #expect((try? Sys.getxattr(m.file("b"), GmemXattr.flags)) == "mmap")
        #expect((try? Sys.getxattr(m.file("c"), GmemXattr.flags)) == "mmap init-shared")
        #expect(attributes(m.file("a")) == "0-10000 private\n")
        #expect(attributes(m.file("c")) == "0-10000 shared\n")
        #expect((try? write(m.file("c"), Array(repeating: 7, count: 5000), at: 0)) == 5000)
        #expect(throws: Never.self) { try convert(m.file("c"), "16K 16K private") }
        let s = stats(m.file("c"))
        #expect(s[.size] == "65536")
        #expect(s[.allocatedBytes] == "8192")
        #expect(s[.privateBytes] == "16384")
        #expect(s[.sharedBytes] == "49152")
        #expect(s[.ranges] == "3")
        #expect(s[.conversions] == "1")
        #expect(s[.flags] == "mmap init-shared")
        #expect(s[.references] == "0" && s[.referencedBytes] == "0" && s[.eagainRefusals] == "0" && s[.injectedFailures] == "0")
        let root = try #require((try? Sys.getxattr(m.path, GmemXattr.stats)))
        #expect(root == GmemStats([(.files, "3"), (.allocatedBytes, "8192"), (.maxMemory, "1048576"), (.populateKills, "0"),
                                      (.populateZeroAnswers, "0"), (.populatePending, "0")]).text)
        #expect((try? Sys.listxattr(m.file("a"))) == [GmemXattr.attributes, GmemXattr.flags, GmemXattr.stats, GmemXattr.inject])
        #expect((try? Sys.listxattr(m.path)) == [GmemXattr.stats])
        let tool = try run(["getfattr", "-d", "-m", "-", m.file("b")])
        #expect(tool.output.contains(GmemXattr.attributes + "=\"0-10000 private"))
        #expect(tool.output.contains(GmemXattr.flags + "=\"mmap\""))
    }

    @Test func unknownNamesAreENODATAOnGetAndRejectedOnSet() throws {
        let m = try GmemMount(["--file", "f:64K:mmap"])
        defer { m.unmount() }
        let f = m.file("f")
        let before = attributes(f)
        #expect(throws: Errno.noData) { try Sys.getxattr(f, GmemXattr.prefix + "nope") }
        #expect(throws: Errno.noData) { try Sys.getxattr(f, GmemXattr.setAttributes) }   // write-only
        #expect(throws: Errno.noData) { try Sys.getxattr(f, GmemXattr.create) }           // root only
        #expect(throws: Errno.noData) { try Sys.getxattr(f, "user.other") }
        #expect(throws: Errno.noData) { try Sys.getxattr(m.path, GmemXattr.attributes) }
        #expect(throws: Errno.invalidArgument) { try Sys.setxattr(f, GmemXattr.prefix + "nope", "x") }
        #expect(throws: Errno.invalidArgument) { try Sys.setxattr(f, GmemXattr.attributes, "0-10000 shared") }
        #expect(throws: Errno.invalidArgument) { try Sys.setxattr(f, GmemXattr.create, "g 4096") }      // not on a file
        #expect(throws: Errno.invalidArgument) { try Sys.setxattr(m.path, GmemXattr.setAttributes, "0 4096 shared") }
        #expect(throws: Errno.notSupported) { try Sys.setxattr(f, "user.other", "x") }
        #expect(throws: Errno.notSupported) { try Sys.setxattr(m.path, "user.other", "x") }
        #expect(throws: Errno.notSupported) { try Sys.setxattr(f, "trusted.other", "x") }             // we run as root
        #expect(throws: Errno.notSupported) { try Sys.removexattr(f, GmemXattr.attributes) }
        #expect((try? Sys.listxattr(f)) == [GmemXattr.attributes, GmemXattr.flags, GmemXattr.stats, GmemXattr.inject])
        #expect(attributes(f) == before)
        #expect(stats(f)[.conversions] == "0")
        // setfattr reports the error too.
        #expect(try run(["setfattr", "-n", "user.other", "-v", "x", f]).stderr.contains("Operation not supported"))
    }
}
