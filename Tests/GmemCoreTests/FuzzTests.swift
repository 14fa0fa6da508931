import Foundation
import GmemTestSupport
import FuseKit
import GmemABI
@testable import GmemCore
@testable import GmemFS
import Logging
import Testing

/// Guarantee G5 (docs/security.md): property-based fuzzing of every parser and validator users can reach
/// (xattr values, xattr names, the ioctl struct, create requests, numbers, flags).
///
/// Properties: no input traps; accepted inputs satisfy the documented invariants and agree
/// with an independent reference model; rejected inputs leave a ``GuestMemFile``'s map
/// unchanged, accepted conversions change it exactly as the model says.
///
/// Inputs come from structured generators (64-bit extremes, offset + size wrap-around, page
/// multiples around the file's end, random tokens and suffixes, random bytes) and from
/// mutations of valid inputs. Deterministic per seed.
///
/// `swift test --filter Fuzz` runs `GMEM_FUZZ_COUNT` inputs per test (default 20 000, ~100k
/// in all); the long run: `GMEM_FUZZ_COUNT=1000000 swift test -c release --filter Fuzz`
/// (seed: `GMEM_FUZZ_SEED`).
@Suite struct FuzzTests {
    static let env = ProcessInfo.processInfo.environment
    static let count = Int(env["GMEM_FUZZ_COUNT"] ?? "") ?? 20_000
    static let seed = UInt64(env["GMEM_FUZZ_SEED"] ?? "") ?? 0x6D65_6D66_757A_7A21

    // MARK: - Generators

    /// ``SplitMix64`` with the pickers the generators use.
    struct RNG: RandomNumberGenerator {
        var base: SplitMix64
        init(state: UInt64) { base = SplitMix64(seed: state) }
        mutating func next() -> UInt64 { base.next() }
        mutating func chance(_ n: Int) -> Bool { Int.random(in: 0..<n, using: &self) == 0 }
        mutating func pick<T>(_ xs: [T]) -> T { xs.randomElement(using: &self)! }
    }

    static let extremes: [UInt64] = [0, 1, 4095, 4096, 4097, 1 << 12, 1 << 32, 1 << 63, UInt64.max, UInt64.max - 4095,
                                     UInt64.max - 4096, UInt64.max & ~UInt64(4095), UInt64(1) << 46, (UInt64(1) << 46) + 4096]

    /// Interesting 64-bit values: extremes, page boundaries, near-wrap values.
    static func number(_ r: inout RNG, fileSize: UInt64) -> UInt64 {
        switch Int.random(in: 0..<10, using: &r) {
        case 0: return r.pick(Self.extremes)
        case 1: return .max - UInt64.random(in: 0...(1 << 20), using: &r)
        case 2: return UInt64.random(in: 0...UInt64.max, using: &r)
        case 3: return UInt64.random(in: 0...(min(fileSize, .max - 3 * 4096) + 3 * 4096), using: &r)
        default: return UInt64.random(in: 0...(min(fileSize, 1 << 60) / 4096 + 2), using: &r) * 4096   // mostly valid
        }
    }

    /// A text rendering of `v` in a form `parseNumber` may or may not accept.
    static func numberToken(_ r: inout RNG, _ v: UInt64) -> String {
        var t: String
        switch Int.random(in: 0..<12, using: &r) {
        case 0...4: t = String(v)
        case 5...7: t = (r.chance(2) ? "0x" : "0X") + String(v, radix: 16, uppercase: r.chance(2))
        case 8:   // a suffix form of a smaller number
            let (s, shift) = r.pick([("k", 10), ("K", 10), ("M", 20), ("g", 30), ("T", 40), ("KiB", 10), ("mb", 20), ("GIB", 30), ("tb", 40)])
            t = String(v >> UInt64(shift)) + s
        case 9: t = r.pick(["", "0x", "0X", "x", "-1", "+4096", "1e3", "٣", "0x-1", "18446744073709551616", "0x10000000000000000",
                            "99999999999999999999", "16777216T", "17179869184G", "0xffffffffffffffffk", "4096 ", "1kk", "1ib", "1b", "1bb"])
        case 10: t = String(v) + r.pick(["b", "B", "iB", "k", "kib", "KIB", "x", "z", ".", ",", "\u{00e9}", "0"])
        default: t = String(v, radix: 16)
        }
        if r.chance(40) { t = r.pick([" ", "\t", "\0", "-", "0"]) + t }
        return t
    }

    static func randomBytes(_ r: inout RNG, max: Int = 48) -> [UInt8] {
        (0..<Int.random(in: 0...max, using: &r)).map { _ in
            r.chance(3) ? r.pick(Array("0123456789abcdefxX kKmMgGtTiIbB\t\n".utf8)) : UInt8.random(in: 0...255, using: &r)
        }
    }

    /// Flips, inserts, deletes or duplicates bytes of a (usually valid) input.
    static func mutate(_ r: inout RNG, _ input: [UInt8]) -> [UInt8] {
        var b = input
        for _ in 0..<Int.random(in: 1...3, using: &r) {
            let i = b.isEmpty ? 0 : Int.random(in: 0..<b.count, using: &r)
            switch Int.random(in: 0..<5, using: &r) {
            case 0 where !b.isEmpty: b[i] ^= UInt8(1) << UInt8.random(in: 0...7, using: &r)
            case 1: b.insert(r.pick(Array(" 0x9fkK\0\t-,.ab\u{7f}".utf8) + [0xFF, 0xC3]), at: i)
            case 2 where !b.isEmpty: b.remove(at: i)
            case 3 where !b.isEmpty: b.insert(contentsOf: b[i...].prefix(4), at: i)
            default: b += Array(" \(UInt64.max)".utf8)
            }
        }
        return b
    }

    static func separator(_ r: inout RNG) -> String { r.chance(6) ? r.pick(["\t", "  ", "\n", " \r ", "", ",", "\u{0b}"]) : " " }

    static func conversionValue(_ r: inout RNG, fileSize: UInt64) -> [UInt8] {
        if r.chance(10) { return randomBytes(&r) }
        let attr = r.chance(4) ? numberToken(&r, r.pick([0, 8, 8, 1, 16, 9, 0x18, .max])) : r.pick(["private", "shared", "Private", "SHARED", "priv", "privat", ""])
        var tokens = [numberToken(&r, number(&r, fileSize: fileSize)), numberToken(&r, number(&r, fileSize: fileSize)), attr]
        if r.chance(15) { tokens.removeLast() }
        if r.chance(15) { tokens.append(r.pick(["extra", "0", "private"])) }
        var text = (r.chance(20) ? " " : "") + tokens.joined(separator: separator(&r))
        if r.chance(10) { text += r.pick(["\0", "\0\0", "\n", " "]) }
        let bytes = Array(text.utf8)
        return r.chance(6) ? mutate(&r, bytes) : bytes
    }

    // MARK: - Reference models (written independently of the parsers)

    /// `parseNumber`'s documented grammar: `[0-9]+` or `0[xX][0-9a-fA-F]+` (greedy), then an
    /// optional `k|m|g|t` optionally followed by `ib` or `b` (case-insensitive); no overflow.
    static func referenceNumber(_ s: String) -> UInt64? {
        guard s.utf8.allSatisfy({ $0 < 0x80 }) else { return nil }
        var rest = Substring(s)
        var radix = 10
        if rest.count >= 2, rest.hasPrefix("0x") || rest.hasPrefix("0X") { radix = 16; rest = rest.dropFirst(2) }
        let digits = rest.prefix { $0.isHexDigit && (radix == 16 || $0.isNumber) }
        guard !digits.isEmpty, let value = UInt64(digits, radix: radix) else { return nil }
        let shifts: [String: UInt64] = ["": 0, "k": 10, "m": 20, "g": 30, "t": 40, "kb": 10, "mb": 20, "gb": 30, "tb": 40,
                                        "kib": 10, "mib": 20, "gib": 30, "tib": 40]
        guard let shift = shifts[rest.dropFirst(digits.count).lowercased()], value <= UInt64.max >> shift else { return nil }
        return value << shift
    }

    /// The fields of an xattr value: trailing NULs dropped, valid UTF-8, no control characters
    /// but space/tab/CR/LF, split on those.
    static func referenceFields(_ v: [UInt8]) -> [String]? {
        var b = v
        while b.last == 0 { b.removeLast() }
        let s = String(decoding: b, as: UTF8.self)
        guard s.utf8.elementsEqual(b) else { return nil }   // invalid UTF-8 decodes to U+FFFD
        guard !s.unicodeScalars.contains(where: { $0.value < 0x20 && !"\t\n\r ".unicodeScalars.contains($0) }) else { return nil }
        return s.split(whereSeparator: { " \t\n\r".contains($0) }).map(String.init)
    }

    static func referenceConversion(_ v: [UInt8], fileSize: UInt64) -> (UInt64, UInt64, UInt64)? {
        guard let f = referenceFields(v), f.count == 3 else { return nil }
        let attr: UInt64?
        switch f[2].lowercased() { case "private": attr = 8; case "shared": attr = 0; default: attr = referenceNumber(f[2]) }
        guard let o = referenceNumber(f[0]), let s = referenceNumber(f[1]), let a = attr else { return nil }
        return referenceRange(o, s, a, fileSize: fileSize) ? (o, s, a) : nil
    }

    static func referenceRange(_ o: UInt64, _ s: UInt64, _ a: UInt64, fileSize: UInt64) -> Bool {
        // In unbounded arithmetic: no unknown bits, non-empty, aligned, inside the file.
        a & ~8 == 0 && s > 0 && o % 4096 == 0 && s % 4096 == 0 && o < fileSize
            && (UInt128(o) + UInt128(s)) <= UInt128(fileSize)
    }

    /// The attribute map of a file as a page array, from its public listing.
    static func pages(of file: GuestMemFile) -> [Bool] {
        var map: [Bool] = []
        file.forEachAttributeRange { s, e, a in map += Array(repeating: a.isPrivate, count: Int((e - s) / 4096)) }
        return map
    }

    // MARK: - Properties

    @Test func parseNumberMatchesItsGrammar() {
        var r = RNG(state: Self.seed)
        var accepted = 0
        for i in 0..<Self.count {
            let text: String
            if i % 3 == 0 { text = String(decoding: Self.randomBytes(&r, max: 24), as: UTF8.self) }
            else { text = Self.numberToken(&r, Self.number(&r, fileSize: 1 << 30)) }
            let got = try? parseNumber(text)
            let want = Self.referenceNumber(text)
            if got != want { Issue.record("parseNumber(\(text.debugDescription)) = \(String(describing: got)), model says \(String(describing: want))"); return }
            if got != nil { accepted += 1 }
        }
        print("fuzz parseNumber: \(Self.count) inputs, \(accepted) accepted")
    }

    @Test func conversionRequestsApplyExactlyOrNotAtAll() throws {
        var r = RNG(state: Self.seed ^ 1)
        let budget = MemoryBudget(limitBytes: nil)
        let file = try GuestMemFile(size: 64 * 4096, flags: [.mmap], budget: budget)
        var model = Array(repeating: true, count: 64)
        var accepted = 0, changed = 0
        for i in 0..<Self.count {
            // Sizes: mostly this file's, sometimes other (also huge) page multiples.
            let other = i % 4 == 0
            let fileSize = other ? max(4096, (Self.number(&r, fileSize: 1 << 40) & ~4095)) : file.size
            let value = Self.conversionValue(&r, fileSize: fileSize)
            let before = file.stats
            let request = try? ConversionRequest(xattrValue: value, fileSize: fileSize)
            let want = Self.referenceConversion(value, fileSize: fileSize)
            guard request.map({ [$0.offset, $0.size, $0.attributes.rawValue] }) == want.map({ [$0.0, $0.1, $0.2] }) else {
                Issue.record("ConversionRequest(\(String(decoding: value, as: UTF8.self).debugDescription), fileSize: \(fileSize)) = \(String(describing: request)), model says \(String(describing: want))")
                return
            }
            guard let request else {
                // Rejected: nothing may have changed.
                let after = file.stats
                #expect(after.privateBytes == before.privateBytes && after.ranges == before.ranges && after.conversions == before.conversions)
                continue
            }
            accepted += 1
            // Documented invariants of an accepted request.
            #expect(request.offset % 4096 == 0 && request.size % 4096 == 0 && request.size > 0)
            #expect(request.offset.addingReportingOverflow(request.size).overflow == false && request.offset + request.size <= fileSize)
            #expect(request.pages.last < fileSize / 4096 && request.pages.count == request.size / 4096)
            guard !other || fileSize == file.size else { continue }
            if try file.setAttributes(request) != .unchanged { changed += 1 }
            for p in request.pages { model[Int(p)] = request.attributes.isPrivate }
            if i % 16 == 0 || request.pages.count < 3 {
                let got = Self.pages(of: file)
                guard got == model else { Issue.record("map diverged after \(request)"); return }
            }
        }
        #expect(Self.pages(of: file) == model)
        print("fuzz set_attributes: \(Self.count) inputs, \(accepted) accepted, \(changed) changed the map")
    }

    @Test func ioctlStructValidation() throws {
        var r = RNG(state: Self.seed ^ 2)
        let file = try GuestMemFile(size: 64 * 4096, flags: [.initShared], budget: MemoryBudget(limitBytes: nil))
        var model = Array(repeating: false, count: 64)
        var accepted = 0
        for _ in 0..<Self.count {
            var words = (0..<16).map { _ in UInt64(0) }
            words[0] = Self.number(&r, fileSize: file.size)
            words[1] = Self.number(&r, fileSize: file.size)
            words[2] = r.chance(3) ? Self.number(&r, fileSize: 16) : r.pick([0, 8])
            if r.chance(8) { words[3] = Self.number(&r, fileSize: 16) }
            words[4] = UInt64.random(in: 0...UInt64.max, using: &r)                    // error_offset: ignored
            if r.chance(8) { words[Int.random(in: 5..<16, using: &r)] = UInt64.random(in: 0...UInt64.max, using: &r) | 1 }
            var bytes = words.flatMap { w in withUnsafeBytes(of: w.littleEndian, Array.init) }
            if r.chance(20) {
                bytes = Array(bytes.prefix(Int.random(in: 0...200, using: &r))) + Self.randomBytes(&r, max: 40)
                if bytes.count == 128 {   // a different struct of the right size: the model follows the bytes
                    words = (0..<16).map { i in bytes[(i * 8)..<(i * 8 + 8)].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) } }
                }
            }
            let before = Self.pages(of: file)
            let args = bytes.withUnsafeBytes { try? KVMMemoryAttributes2(bytes: $0) }
            guard let args else { #expect(bytes.count != 128); continue }
            #expect(bytes.count == 128 && args.offset == words[0] && args.reserved.count == 11)
            let request = try? args.request(fileSize: file.size)
            let want = words[3] == 0 && words[5...].allSatisfy { $0 == 0 } && Self.referenceRange(words[0], words[1], words[2], fileSize: file.size)
            #expect((request != nil) == want, "ioctl words \(words.prefix(4)) flags/reserved \(words[3...])")
            guard let request else { #expect(Self.pages(of: file) == before); continue }
            accepted += 1
            try file.setAttributes(request)
            for p in request.pages { model[Int(p)] = request.attributes.isPrivate }
            #expect(Self.pages(of: file) == model)
        }
        print("fuzz ioctl: \(Self.count) inputs, \(accepted) accepted")
    }

    @Test func createRequestsAndFlags() {
        var r = RNG(state: Self.seed ^ 3)
        var accepted = 0
        let nameParts = ["gmem", "a", ".", "..", ".guest", "x/y", "/", "é", "日本", "\u{7f}", "\t", "\u{1}", "-", "name", " ", "\0"]
        for i in 0..<Self.count {
            var value: [UInt8]
            if r.chance(8) { value = Self.randomBytes(&r) } else {
                var name = (0..<Int.random(in: 1...3, using: &r)).map { _ in r.pick(nameParts) }.joined()
                if r.chance(30) { name = String(repeating: r.pick(["a", "é"]), count: Int.random(in: 120...260, using: &r)) }
                var tokens = [name, Self.numberToken(&r, Self.number(&r, fileSize: 1 << 32))]
                if r.chance(2) {
                    tokens.append(r.chance(4) ? Self.numberToken(&r, r.pick([0, 1, 2, 3, 4, 7, .max]))
                                  : (0..<Int.random(in: 1...3, using: &r)).map { _ in r.pick(["mmap", "init-shared", "init_shared", "MMAP", "", "shared", "init"]) }.joined(separator: ","))
                }
                if r.chance(20) { tokens.append("extra") }
                value = Array(tokens.joined(separator: Self.separator(&r)).utf8)
                if r.chance(6) { value = Self.mutate(&r, value) }
            }
            guard let request = try? CreateRequest(xattrValue: value) else { continue }
            accepted += 1
            // Documented invariants.
            let n = request.name
            #expect(!n.isEmpty && n.utf8.count <= 255 && !n.hasPrefix("."), "name \(n.debugDescription)")
            #expect(!n.unicodeScalars.contains { $0 == "/" || $0.value < 0x20 || (0x7f...0x9f).contains($0.value) })
            #expect(request.size > 0 && request.size % 4096 == 0 && request.flags.isSubset(of: .all))
            #expect(Self.referenceFields(value).map { $0.count == 2 || $0.count == 3 } == true)
            // A small accepted request makes a real file (a huge one is EFBIG, never a trap).
            if i % 8 == 0 {
                do {
                    let f = try GuestMemFile(size: request.size, flags: request.flags, budget: MemoryBudget(limitBytes: nil))
                    #expect(f.size == request.size && f.stats.privateBytes == (request.flags.contains(.initShared) ? 0 : request.size))
                } catch {
                    #expect(request.size > PageStore.maximumSize && error == .fileTooLarge(request.size))
                }
            }
        }
        // parseFlags against its grammar.
        for _ in 0..<Self.count / 4 {
            let text = r.chance(3) ? String(decoding: Self.randomBytes(&r, max: 16), as: UTF8.self)
                : (0..<Int.random(in: 1...3, using: &r)).map { _ in r.pick(["mmap", "init-shared", "init_shared", "", "x", "0", "3", "4", "0x2", "1k", "Mmap", "INIT_Shared", "mmapx"]) }.joined(separator: ",")
            let got = try? CreateRequest.parseFlags(text)
            var want: GmemFlags? = []
            if let c = text.first, c.isNumber {
                want = Self.referenceNumber(text).flatMap { $0 & ~3 == 0 ? GmemFlags(rawValue: $0) : nil }
            } else {
                for part in text.split(separator: ",", omittingEmptySubsequences: false) {
                    switch part.lowercased() { case "mmap": want?.insert(.mmap); case "init-shared", "init_shared": want?.insert(.initShared); default: want = nil }
                }
            }
            // Unicode digits ("٣") start a number but are not ASCII digits: both must reject.
            #expect(got == want, "parseFlags(\(text.debugDescription))")
        }
        print("fuzz create: \(Self.count) inputs, \(accepted) accepted; parseFlags: \(Self.count / 4) inputs")
    }

    @Test func xattrNamesAndWindows() throws {
        var r = RNG(state: Self.seed ^ 4)
        let fs = GmemFilesystem(options: GmemOptions(guestView: true), notifier: Notifier(), logger: Logger(label: "fuzz"))
        let file = try fs.createFile(CreateRequest(name: "f", size: 256 * 4096, flags: [.mmap]))
        for p in stride(from: UInt64(0), to: 256, by: 3) {   // a fragmented map
            try file.setAttributes(try ConversionRequest(offset: p * 4096, size: 4096, attributes: 0, fileSize: file.size))
        }
        guard let node = fs.node(InodeNumber.firstFile) else { Issue.record("no node"); return }
        let stats = file.stats
        var found = 0
        for _ in 0..<Self.count {
            var name: String
            if r.chance(4) {
                name = String(decoding: Self.randomBytes(&r, max: 40), as: UTF8.self)
            } else {
                let start = Self.number(&r, fileSize: file.size), end = Self.number(&r, fileSize: file.size)
                let window = r.chance(2) ? String(start, radix: 16) + "-" + String(end, radix: 16)
                    : [Self.numberToken(&r, start), r.pick(["-", "--", "", ":"]), Self.numberToken(&r, end)].joined()
                name = r.pick([GmemXattr.attributes + ":", GmemXattr.attributes, GmemXattr.prefix, GmemXattr.stats, GmemXattr.flags,
                               GmemXattr.setAttributes, GmemXattr.create, "trusted.x", ""]) + (r.chance(3) ? "" : window)
            }
            let value: String
            do { value = try fs.xattrValue(of: node, name: name) } catch {
                #expect(error.errno == .noData)
                continue
            }
            found += 1
            // Windowed listings stay inside the window and the file, lines well-formed.
            if name.hasPrefix(GmemXattr.attributes + ":"), let w = try? GmemFilesystem.parseWindow(name.dropFirst((GmemXattr.attributes + ":").count)) {
                #expect(w.start < w.end)
                for line in value.split(separator: "\n") {
                    let l = try? AttributeLine(parsing: line)
                    #expect(l.map { $0.start >= w.start && $0.end <= min(w.end, file.size) } == true, "\(line)")
                }
            }
        }
        let after = file.stats
        #expect(after.ranges == stats.ranges && after.privateBytes == stats.privateBytes)
        print("fuzz xattr names: \(Self.count) inputs, \(found) readable")
    }
}
