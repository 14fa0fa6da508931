import GmemABI
import Testing

/// The interface target: the documented spellings and numbers (kept as literals here on
/// purpose: this is the one place a test checks the spelling itself), the struct's round trip,
/// and the text formats against their grammar.
@Suite struct GmemABITests {
    @Test func namesAndNumbersAreTheDocumentedOnes() {
        #expect(GmemXattr.create == "user.gmem.create")
        #expect(GmemXattr.setAttributes == "user.gmem.set_attributes")
        #expect(GmemXattr.attributes == "user.gmem.attributes")
        #expect(GmemXattr.flags == "user.gmem.flags")
        #expect(GmemXattr.stats == "user.gmem.stats")
        #expect(GmemXattr.inject == "user.gmem.inject")
        #expect(GmemXattr.sizeMax == 65536)
        // _IOW('G', 1 and 2, 64 bytes): direction 1 << 30.
        #expect(GmemPageReference.pinNumber == 0x4040_4701 && GmemPageReference.unpinNumber == 0x4040_4702)
        #expect(GmemPageReference.pinNumber == 1 << 30 | UInt32(GmemPageReference.byteCount) << 16 | 0x47 << 8 | 0x01)
        #expect(GmemPageReference.byteCount == 64)
        #expect(GmemInjectedFailure.allCases.map(\.rawValue) == ["enomem", "eagain", "eintr"])
        #expect(KVMMemoryAttributes2.ioctlNumber == 0xC080_AED2)
        // _IOWR(0xAE, 0xd2, 128 bytes): direction 3 << 30, size << 16, type << 8, number.
        #expect(KVMMemoryAttributes2.ioctlNumber == 3 << 30 | UInt32(KVMMemoryAttributes2.byteCount) << 16 | 0xAE << 8 | 0xD2)
        #expect(KVMMemoryAttributes2.byteCount == 128)
        #expect(GmemAttributeName.privateBit == 1 << 3)
        #expect(GmemCreateFlag.allCases.map(\.rawValue) == ["mmap", "init-shared"])
        #expect(GmemCreateFlag.allCases.map(\.bit) == [1, 2])
    }

    @Test func statsKeysAndLimitsAreTheDocumentedOnes() {
        #expect(GmemStatsKey.file.map(\.name) == ["size", "allocated_bytes", "private_bytes", "shared_bytes", "ranges",
                                                  "conversions", "references", "referenced_bytes", "eagain_refusals",
                                                  "injected_failures", "flags"])
        #expect(GmemStatsKey.root.map(\.name) == ["files", "allocated_bytes", "max_memory", "populate_kills", "populate_zero_answers", "populate_pending"])
        #expect(GmemStats.noLimit == "none")
        #expect(GmemStats([(.files, "3"), (.maxMemory, "none")]).text == "files=3\nmax_memory=none\n")
        let parsed = GmemStats(parsing: "files=3\nnot a pair\nmax_memory=none\nfuture_key=7\n")
        #expect(parsed[.files] == "3" && parsed[.maxMemory] == "none" && parsed[.ranges] == nil)
        #expect(parsed.pairs.map(\.key) == ["files", "max_memory", "future_key"])
        #expect(GmemStatsKey.file.filter(\.isByteCount) == [.size, .allocatedBytes, .privateBytes, .sharedBytes, .referencedBytes])
        #expect(GmemLimit.fileSizeMax == 1 << 46)
        #expect(GmemLimit.referencesPerPageMax == 65536)
        #expect(GmemLimit.injectedFailuresMax == 16)
    }

    @Test func createFlagGrammar() throws {
        #expect(try GmemCreateFlag.parseList("mmap") == [.mmap])
        #expect(try GmemCreateFlag.parseList("INIT_shared,mmap,mmap") == [.mmap, .initShared])
        #expect(try GmemCreateFlag.parseList("3") == [.mmap, .initShared])
        #expect(try GmemCreateFlag.parseList("0x2") == [.initShared])
        #expect(try GmemCreateFlag.parseList("0") == [])
        #expect(throws: GmemABIError.unknownFlag("bogus")) { try GmemCreateFlag.parseList("mmap,bogus") }
        #expect(throws: GmemABIError.unknownFlag("")) { try GmemCreateFlag.parseList("mmap,") }
        #expect(throws: GmemABIError.unknownFlagBits("4")) { try GmemCreateFlag.parseList("4") }
        #expect(GmemABIError.unknownFlagBits("4").description == "flags 4 has unknown bits (bit 0 mmap, bit 1 init-shared)")
        #expect(GmemCreateFlag.word([]) == "none" && GmemCreateFlag.word([.mmap, .initShared]) == "mmap,init-shared")
    }

    @Test func fileSizeRule() {
        #expect(GmemFileSize.problem(4096) == nil && GmemFileSize.problem(UInt64(Int64.max) - 4095) == nil)
        #expect(GmemFileSize.problem(0) == .notPositivePageMultiple)
        #expect(GmemFileSize.problem(4095) == .notPositivePageMultiple && GmemFileSize.problem(4097) == .notPositivePageMultiple)
        #expect(GmemFileSize.problem(1 << 63) == .tooLarge && GmemFileSize.problem(UInt64.max - 4095) == .tooLarge)
    }

    @Test func fileNameRule() {
        #expect(GmemFileName.problem("vm-0_a.b") == nil)
        #expect(GmemFileName.problem(String(repeating: "x", count: 255)) == nil)
        #expect(GmemFileName.problem("") == .length)
        #expect(GmemFileName.problem(String(repeating: "é", count: 128)) == .length)   // 256 bytes
        #expect(GmemFileName.problem(".guest") == .reservedPrefix)
        for bad in ["a/b", "a b", "a\tb", "a\u{1}", "a\u{7f}", "a\u{85}"] {
            #expect(GmemFileName.problem(bad) == .forbiddenCharacter, "\(bad.debugDescription)")
        }
    }

    @Test func structFieldsSitAtTheDocumentedOffsets() throws {
        typealias O = KVMMemoryAttributes2.Offset
        #expect([O.offset, O.size, O.attributes, O.flags, O.errorOffset, O.reserved] == [0, 8, 16, 24, 32, 40])
        let args = KVMMemoryAttributes2(offset: 1, size: 2, attributes: 3, flags: 4, errorOffset: 5, reserved: (6...16).map { UInt64($0) })
        let bytes = args.encode()
        // Word i holds i + 1, little-endian.
        for i in 0..<16 { #expect(bytes[i * 8] == UInt8(i + 1) && bytes[i * 8 + 1 ..< i * 8 + 8].allSatisfy { $0 == 0 }) }
        #expect(try bytes.withUnsafeBytes { try KVMMemoryAttributes2.decode($0) } == args)
        #expect(throws: GmemABIError.wrongSize(expected: 128, got: 127)) { try [UInt8](repeating: 0, count: 127).withUnsafeBytes { try KVMMemoryAttributes2.decode($0) } }
    }

    @Test func pageReferenceFieldsSitAtTheDocumentedOffsets() throws {
        typealias O = GmemPageReference.Offset
        #expect([O.offset, O.size, O.flags, O.reserved] == [0, 8, 16, 24])
        let args = GmemPageReference(offset: 1, size: 2, flags: 3, reserved: (4...8).map { UInt64($0) })
        let bytes = args.encode()
        for i in 0..<8 { #expect(bytes[i * 8] == UInt8(i + 1) && bytes[i * 8 + 1 ..< i * 8 + 8].allSatisfy { $0 == 0 }) }
        #expect(try bytes.withUnsafeBytes { try GmemPageReference.decode($0) } == args)
        #expect(throws: GmemABIError.wrongSize(expected: 64, got: 128)) { try [UInt8](repeating: 0, count: 128).withUnsafeBytes { try GmemPageReference.decode($0) } }
    }

    @Test func injectValuesFollowTheGrammar() {
        #expect(GmemXattr.injectValue(.enomem, count: 2, range: (0x1000, 0x2000)) == "enomem count 2 range 4096 8192")
        #expect(GmemXattr.injectValue(.eagain, offset: 0x3000) == "eagain 12288")
        #expect(GmemXattr.injectValue(.eintr) == "eintr")
        #expect(GmemXattr.injectClear == "clear")
    }

    @Test func numberGrammarValidatesBeforeArithmetic() throws {
        #expect(try GmemNumber.parse("0x10KiB") == 16 << 10)
        #expect(try GmemNumber.parse("18446744073709551615") == .max)
        #expect(throws: GmemABIError.overflow("18446744073709551616")) { try GmemNumber.parse("18446744073709551616") }
        #expect(throws: GmemABIError.overflow("16777216T")) { try GmemNumber.parse("16777216T") }
        // Malformed is malformed whatever the magnitude.
        #expect(throws: GmemABIError.notANumber("99999999999999999999zz")) { try GmemNumber.parse("99999999999999999999zz") }
        for bad in ["", "0x", "-1", "4ib", "4b", "4KK", " 4", "4 ", "+4", "4\u{212A}"] {
            #expect(throws: GmemABIError.notANumber(bad), "\(bad.debugDescription)") { try GmemNumber.parse(bad) }
        }
        #expect(GmemNumber.hex(4096) == "0x1000")
    }

    @Test func attributeLinesRoundTrip() throws {
        let lines = [AttributeLine(start: 0, end: 0x4000, attribute: .shared), AttributeLine(start: 0x4000, end: 0x10000, attribute: .private)]
        let text = lines.map(\.text).joined()
        #expect(text == "0-4000 shared\n4000-10000 private\n")
        #expect(try AttributeLine.parseMap(text) == lines)
        for bad in ["4000-4000 shared", "10-0 private", "0-1000 Private", "0-1000", "0-1000  shared", "+0-1000 shared", "0-1000 shared x"] {
            #expect(throws: GmemABIError.malformedLine(bad)) { try AttributeLine(parsing: bad) }
        }
        #expect(GmemXattr.window(start: 0x1000, end: 0x3000) == "user.gmem.attributes:1000-3000")
        #expect(try GmemXattr.parseWindow(name: GmemXattr.window(start: 0x1000, end: 0x3000))! == (0x1000, 0x3000))
        #expect(try GmemXattr.parseWindow(name: GmemXattr.stats) == nil)
    }

    @Test func requestValuesAreWhatTheDaemonParses() {
        #expect(GmemXattr.setAttributesValue(offset: 4096, size: 8192, attribute: .private) == "4096 8192 private")
        #expect(GmemXattr.createValue(name: "vm0", size: 65536, flags: []) == "vm0 65536")
        #expect(GmemXattr.createValue(name: "vm0", size: 65536, flags: [.mmap, .initShared]) == "vm0 65536 mmap,init-shared")
    }
}
