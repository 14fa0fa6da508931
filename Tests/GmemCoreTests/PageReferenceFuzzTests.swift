import GmemABI
import Testing

@testable import GmemCore

/// The pin struct and the `user.gmem.inject` grammar never trap, and what they accept is valid
/// (same generators and seed as ``FuzzTests``).
@Suite struct PageReferenceFuzzTests {
    typealias F = FuzzTests

    @Test func pinStructsAcceptExactlyTheValidRanges() throws {
        var r = F.RNG(state: F.seed ^ 12)
        let size: UInt64 = 64 * 4096
        var refs = PageReferences(pageCount: 64)
        var accepted = 0
        for i in 0..<F.count / 4 {
            var words: [UInt64] = [F.number(&r, fileSize: size), F.number(&r, fileSize: size), 0, 0, 0, 0, 0, 0]
            if r.chance(8) { words[2] = F.number(&r, fileSize: 16) }
            if r.chance(8) { words[Int.random(in: 3..<8, using: &r)] = UInt64.random(in: 1...UInt64.max, using: &r) }
            var bytes = words.flatMap { w in withUnsafeBytes(of: w.littleEndian, Array.init) }
            if r.chance(20) { bytes = Array(bytes.prefix(Int.random(in: 0...80, using: &r))) }
            let pages = try? bytes.withUnsafeBytes { b throws(GmemError) in try GmemPageReference(bytes: b).pages(fileSize: size) }
            let (end, overflow) = words[0].addingReportingOverflow(words[1])
            let valid = bytes.count == 64 && words[2...].allSatisfy { $0 == 0 } && words[1] > 0 && !overflow
                && words[0] % 4096 == 0 && words[1] % 4096 == 0 && end <= size
            #expect((pages != nil) == valid, "words \(words) (\(bytes.count) bytes)")
            guard let pages else { continue }
            accepted += 1
            #expect(pages.first == words[0] / 4096 && pages.count == words[1] / 4096)
            let holder = UInt64(i % 3)
            try refs.pin(pages, holder: holder)
            if r.chance(2) { try refs.unpin(pages, holder: holder) }
        }
        for h in 0..<3 as Range<UInt64> { refs.release(holder: h) }
        #expect(refs.count == 0 && refs.holderCount == 0)
        #expect(accepted > 0)
    }

    @Test func injectionValuesNeverTrap() {
        var r = F.RNG(state: F.seed ^ 13)
        let size: UInt64 = 64 * 4096
        let words = ["enomem", "eintr", "eagain", "clear", "count", "range", "ENOMEM", "x", ""]
        var armed = 0
        for _ in 0..<F.count / 4 {
            var tokens: [String] = []
            for _ in 0..<Int.random(in: 0...6, using: &r) {
                tokens.append(r.chance(2) ? r.pick(words) : F.numberToken(&r, F.number(&r, fileSize: size)))
            }
            var bytes = Array(tokens.joined(separator: r.chance(4) ? "\t" : " ").utf8)
            if r.chance(10) { bytes += F.randomBytes(&r, max: 8) }
            guard let command = try? InjectionCommand(xattrValue: bytes, fileSize: size) else { continue }
            guard case .arm(let fault) = command else { continue }
            armed += 1
            #expect(fault.remaining >= 1)
            if let o = fault.offset { #expect(fault.failure == .eagain && o % 4096 == 0 && o < size) }
            if let p = fault.pages { #expect(fault.failure != .eagain && p.last < 64) }
            // Its own description parses back to the same fault.
            let again = try? InjectionCommand(xattrValue: Array(fault.description.utf8), fileSize: size)
            #expect(again == .arm(fault), "\(fault.description)")
        }
        #expect(armed > 0)
    }
}
