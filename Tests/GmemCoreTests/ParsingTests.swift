import GmemABI
import GmemCore
import Testing

private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

@Suite struct ParsingTests {
    @Test func numbers() throws {
        #expect(try parseNumber("0") == 0)
        #expect(try parseNumber("4096") == 4096)
        #expect(try parseNumber("0x1000") == 4096)
        #expect(try parseNumber("0X1f") == 31)
        #expect(try parseNumber("4K") == 4096)
        #expect(try parseNumber("1M") == 1 << 20)
        #expect(try parseNumber("2g") == 2 << 30)
        #expect(try parseNumber("1T") == 1 << 40)
        #expect(try parseNumber("64KiB") == 65536)
        #expect(try parseNumber("0x10K") == 16 << 10)
        #expect(try parseNumber("18446744073709551615") == .max)
        for bad in ["", "x", "0x", "-1", "1.5", "12Q", "1KK", "18446744073709551616", "16777216T", "0xfffffffffffffffff", " 1", "1 "] {
            #expect(throws: GmemError.self, "\(bad)") { try parseNumber(bad) }
        }
    }

    @Test func setAttributesValues() throws {
        let size: UInt64 = 1 << 20
        let r = try ConversionRequest(xattrValue: bytes("4096 8K private"), fileSize: size)
        #expect(r.offset == 4096 && r.size == 8192 && r.attributes == .private)
        #expect(r.pages == PageRange(1...2))
        #expect(try ConversionRequest(xattrValue: bytes("0x0\t4096  shared\n\0"), fileSize: size).attributes == .shared)
        #expect(try ConversionRequest(xattrValue: bytes("0 4096 8"), fileSize: size).attributes == .private)
        #expect(try ConversionRequest(xattrValue: bytes("0 1M 0"), fileSize: size).size == size)
        let bad = ["", "0 4096", "0 4096 private extra", "0 0 private", "1 4096 private", "0 4095 private",
                   "0 2M private", "1M 4096 private", "0 4096 16", "0 4096 9", "0 4096 secret",
                   "0xfffffffffffff000 0x2000 shared", "18446744073709547520 8192 shared", "0 4096 private\u{1}"]
        for v in bad {
            #expect(throws: GmemError.self, "\(v)") { try ConversionRequest(xattrValue: bytes(v), fileSize: size) }
        }
        #expect(throws: GmemError.self) { try ConversionRequest(xattrValue: [0xff, 0xfe], fileSize: size) }
    }

    @Test func ioctlStruct() throws {
        func encode(_ words: [UInt64]) -> [UInt8] {
            (words + Array(repeating: 0, count: 16 - words.count)).flatMap { w in (0..<8).map { UInt8(truncatingIfNeeded: w >> (8 * $0)) } }
        }
        let ok = try encode([4096, 4096, 8]).withUnsafeBytes { try KVMMemoryAttributes2(bytes: $0) }.request(fileSize: 1 << 20)
        #expect(ok.offset == 4096 && ok.attributes == .private)
        for words: [UInt64] in [[0, 4096, 8, 1], [0, 4096, 8, 0, 0, 1], [0, 4096, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                                [0, 4096, 4], [0, 0, 8], [4096, .max - 4095, 8], [1, 4096, 8], [0, 2 << 20, 8]] {
            #expect(throws: GmemError.self, "\(words)") {
                try encode(words).withUnsafeBytes { try KVMMemoryAttributes2(bytes: $0) }.request(fileSize: 1 << 20)
            }
        }
        // an input error_offset is not checked (the kernel's rule).
        _ = try encode([0, 4096, 8, 0, 12345]).withUnsafeBytes { try KVMMemoryAttributes2(bytes: $0) }.request(fileSize: 1 << 20)
        #expect(throws: GmemError.self) { try [UInt8](repeating: 0, count: 64).withUnsafeBytes { try KVMMemoryAttributes2(bytes: $0) } }
    }

    @Test func createValues() throws {
        let r = try CreateRequest(xattrValue: bytes("vm0 16M mmap,init-shared"))
        #expect(r.name == "vm0" && r.size == 16 << 20 && r.flags == [.mmap, .initShared])
        #expect(try CreateRequest(xattrValue: bytes("a 4096")).flags == [])
        #expect(try CreateRequest(xattrValue: bytes("a 4096 3")).flags == .all)
        #expect(try CreateRequest(xattrValue: bytes("a 4096 init_shared")).flags == .initShared)
        for v in ["", "a", "a 0", "a 4095", "a 4096 mmap,bogus", "a 4096 4", "a 4096 mmap extra", ".guest 4096",
                  ".a 4096", "a/b 4096", String(repeating: "n", count: 256) + " 4096", "a 4096 mmap,",
                  "a\u{7f} 4096", "esc\u{9b}31m 4096"] {
            #expect(throws: GmemError.self, "\(v)") { try CreateRequest(xattrValue: bytes(v)) }
        }
        #expect(try CreateRequest(xattrValue: bytes(String(repeating: "n", count: 255) + " 4096")).name.count == 255)
        // KVM_CREATE_GUEST_MEMFD's size is a loff_t: bit 63 set is EINVAL (not EFBIG).
        for size in ["0x8000000000000000", "0xfffffffffffff000"] {
            #expect(throws: GmemError.invalidArgument("size must be below 2^63")) { try CreateRequest(xattrValue: bytes("a \(size)")) }
        }
        #expect(try CreateRequest(xattrValue: bytes("a 0x7ffffffffffff000")).size == 0x7fff_ffff_ffff_f000)
    }

    @Test func errnoMapping() {
        #expect(GmemError.invalidArgument("x").errno == .invalidArgument)
        #expect(GmemError.privatePage(offset: 0).errno == .permissionDenied)
        #expect(GmemError.noSpace("x").errno == .noSpace)
        #expect(GmemError.valueTooLarge(1).errno == .argListTooLong)
        #expect(GmemError.noSuchOffset(0).errno == .noSuchAddressOrDevice)
    }
}
