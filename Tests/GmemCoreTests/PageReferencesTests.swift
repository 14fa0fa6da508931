import GmemABI
import GmemTestSupport
import Synchronization
import Testing

@testable import GmemCore

/// Page references against a naive model (a count per page per holder), armed faults, and the
/// conversion failures they cause on a ``GuestMemFile`` (no mount).
@Suite struct PageReferencesTests {
    /// The obviously-correct model: `counts[holder][page]`.
    struct Model {
        var counts: [UInt64: [UInt64]] = [:]
        let pageCount: Int
        func total(_ p: Int) -> UInt64 { counts.values.reduce(0) { $0 + $1[p] } }
        var count: UInt64 { (0..<pageCount).reduce(0) { $0 + total($1) } }
        var referencedPages: UInt64 { UInt64((0..<pageCount).filter { total($0) > 0 }.count) }
        func firstReferenced(_ r: PageRange) -> UInt64? { r.first { total(Int($0)) > 0 } }
    }

    @Test(arguments: [1, 2, 3, 4, 5, 6] as [UInt64])
    func randomPinsAgainstModel(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let pageCount = 1 + Int(rng.next(below: 64))
        var refs = PageReferences(pageCount: UInt64(pageCount))
        var model = Model(pageCount: pageCount)
        for step in 0..<400 {
            let holder = rng.next(below: 4)
            let first = rng.next(below: UInt64(pageCount))
            let pages = PageRange(first...(first + rng.next(below: min(UInt64(pageCount) - first, 9))))
            let what = "seed \(seed) step \(step) holder \(holder) pages \(pages)"
            switch rng.next(below: 10) {
            case 0..<5:
                #expect(throws: Never.self, "\(what) pin") { try refs.pin(pages, holder: holder) }
                var c = model.counts[holder] ?? Array(repeating: 0, count: pageCount)
                for p in pages { c[Int(p)] += 1 }
                model.counts[holder] = c
            case 5..<9:
                let held = model.counts[holder].map { c in pages.allSatisfy { c[Int($0)] > 0 } } ?? false
                do {
                    try refs.unpin(pages, holder: holder)
                    #expect(held, "\(what): unpin succeeded without references")
                    for p in pages { model.counts[holder]![Int(p)] -= 1 }
                    if model.counts[holder]!.allSatisfy({ $0 == 0 }) { model.counts[holder] = nil }
                } catch {
                    #expect(!held, "\(what): \(error)")
                    #expect(error.errno == .noSuchFileOrDirectory)
                }
            default:
                let dropped = refs.release(holder: holder)
                #expect(dropped == model.counts[holder].map { $0.reduce(0, +) } ?? 0, "\(what) release")
                model.counts[holder] = nil
            }
            #expect(refs.count == model.count, "\(what) count")
            #expect(refs.referencedPages == model.referencedPages, "\(what) referencedPages")
            #expect(refs.holderCount == model.counts.count, "\(what) holders")
            let a = rng.next(below: UInt64(pageCount))
            let window = PageRange(a...(a + rng.next(below: UInt64(pageCount) - a)))
            #expect(refs.firstReferenced(in: window) == model.firstReferenced(window), "\(what) firstReferenced(\(window))")
            let probe = rng.next(below: UInt64(pageCount))
            #expect(refs.count(of: holder, page: probe) == model.counts[holder]?[Int(probe)] ?? 0, "\(what) count of page \(probe)")
        }
        for h in 0..<4 as Range<UInt64> { refs.release(holder: h) }
        #expect(refs.count == 0 && refs.referencedPages == 0 && refs.firstReferenced(in: PageRange(0...UInt64(pageCount - 1))) == nil)
    }

    @Test func perPageLimitIsEnomemAndAllOrNothing() throws {
        var refs = PageReferences(pageCount: 4)
        for _ in 0..<PageReferences.maximumPerPage { try refs.pin(PageRange(1...1), holder: 7) }
        #expect(throws: GmemError.self) { try refs.pin(PageRange(0...2), holder: 7) }
        #expect(refs.count(of: 7, page: 0) == 0 && refs.count(of: 7, page: 2) == 0)
        #expect(refs.count == PageReferences.maximumPerPage)
        try refs.pin(PageRange(0...2), holder: 8)   // another holder has its own limit
        #expect(refs.count == PageReferences.maximumPerPage + 3)
    }

    // MARK: - On a file

    func file(pages: UInt64 = 16, shared: Bool = true) throws -> GuestMemFile {
        try GuestMemFile(size: pages * pageSize, flags: shared ? [.mmap, .initShared] : [.mmap], budget: MemoryBudget(limitBytes: nil))
    }

    func request(_ offset: UInt64, _ size: UInt64, _ a: MemoryAttributes, _ f: GuestMemFile) throws -> ConversionRequest {
        try ConversionRequest(offset: offset * pageSize, size: size * pageSize, attributes: a.rawValue, fileSize: f.size)
    }

    func map(_ f: GuestMemFile) -> String {
        var s = ""
        f.forEachAttributeRange { a, b, v in s += "\(a / pageSize)-\(b / pageSize) \(v.name)\n" }
        return s
    }

    @Test func referencedPageRefusesToPrivateOnly() throws {
        let f = try file()
        try f.pin(PageRange(5...6), holder: 1, view: .host)
        #expect(throws: GmemError.referenced(offset: 5 * pageSize)) { try f.setAttributes(try request(0, 16, .private, f)) }
        #expect(throws: GmemError.referenced(offset: 6 * pageSize)) { try f.setAttributes(try request(6, 4, .private, f)) }
        #expect(map(f) == "0-16 shared\n")
        #expect(try f.setAttributes(try request(0, 5, .private, f)) == .becamePrivate)
        // To shared ignores references.
        #expect(try f.setAttributes(try request(0, 16, .shared, f)) == .becameShared)
        // A request that changes nothing succeeds before any check (the kernel's early return).
        #expect(try f.setAttributes(try request(0, 16, .shared, f)) == .unchanged)
        let s = f.stats
        #expect(s.references == 2 && s.referencedBytes == 2 * pageSize && s.referenceRefusals == 2 && s.conversions == 2)
        #expect(f.releaseReferences(holder: 1) == 2)
        #expect(try f.setAttributes(try request(0, 16, .private, f)) == .becamePrivate)
    }

    /// The kernel's early return comes before its reference check and its failure points: a
    /// to-private request whose range is already private succeeds even with a referenced page in
    /// it (a guest-view pin), and consumes no armed fault.
    @Test func earlyReturnIgnoresReferencesAndArmedFaults() throws {
        let f = try file(shared: false)
        try f.pin(PageRange(2...3), holder: 1, view: .guest)
        try f.inject(try InjectionCommand(xattrValue: Array("enomem".utf8), fileSize: f.size))
        #expect(try f.setAttributes(try request(0, 16, .private, f)) == .unchanged)
        #expect(f.armedFaults.count == 1 && f.stats.referenceRefusals == 0 && f.stats.injectedFailures == 0)
        #expect(throws: GmemError.injected(.enomem, errorOffset: 0)) { try f.setAttributes(try request(0, 4, .shared, f)) }
        #expect(map(f) == "0-16 private\n")
    }

    @Test func hostViewCannotPinPrivatePages() throws {
        let f = try file(shared: false)
        #expect(throws: GmemError.badAddress(offset: 0)) { try f.pin(PageRange(0...1), holder: 1, view: .host) }
        #expect(f.stats.references == 0)
        try f.setAttributes(try request(0, 1, .shared, f))
        #expect(throws: GmemError.badAddress(offset: pageSize)) { try f.pin(PageRange(0...1), holder: 1, view: .host) }
        try f.pin(PageRange(0...1), holder: 1, view: .guest)   // the guest view ignores attributes
        #expect(f.stats.references == 2)
    }

    @Test func injectedFaultsFireInOrderAndChangeNothing() throws {
        let f = try file()
        func arm(_ text: String) throws { try f.inject(try InjectionCommand(xattrValue: Array(text.utf8), fileSize: f.size)) }
        try arm("enomem count 2 range 0x8000 0x2000")
        try arm("eagain 0x3000")
        try arm("eintr")
        #expect(f.armedFaults.map(\.description) == ["enomem count 2 range 0x8000 0x2000", "eagain 0x3000 count 1", "eintr count 1"])
        // [0, 4p) to shared: already shared, nothing fires.
        #expect(try f.setAttributes(try request(0, 4, .shared, f)) == .unchanged)
        // [0, 4p) to private: not in enomem's range; eagain names page 3.
        #expect(throws: GmemError.injected(.eagain, errorOffset: 3 * pageSize)) { try f.setAttributes(try request(0, 4, .private, f)) }
        #expect(throws: GmemError.injected(.enomem, errorOffset: 9 * pageSize)) { try f.setAttributes(try request(9, 1, .private, f)) }
        #expect(throws: GmemError.injected(.enomem, errorOffset: 7 * pageSize)) { try f.setAttributes(try request(7, 2, .private, f)) }
        #expect(throws: GmemError.injected(.eintr, errorOffset: 0)) { try f.setAttributes(try request(0, 1, .private, f)) }
        #expect(f.armedFaults.isEmpty)
        #expect(map(f) == "0-16 shared\n")
        #expect(f.stats.injectedFailures == 4 && f.stats.conversions == 0)
        #expect(try f.setAttributes(try request(0, 16, .private, f)) == .becamePrivate)
        for _ in 0..<FaultInjector.maximumArmed { try arm("eintr") }
        #expect(throws: GmemError.self) { try arm("eintr") }
        try arm("clear")
        #expect(f.armedFaults.isEmpty)
    }

    @Test func injectionGrammar() throws {
        let size = 16 * pageSize
        func parse(_ s: String) throws(GmemError) -> InjectionCommand { try InjectionCommand(xattrValue: Array(s.utf8), fileSize: size) }
        #expect(try parse("clear") == .clear)
        #expect(try parse("CLEAR\n") == .clear)
        guard case .arm(let a) = try parse("eintr range 4K 8K count 3") else { Issue.record("not armed"); return }
        #expect(a.failure == .eintr && a.remaining == 3 && a.pages == PageRange(1...2) && a.offset == nil)
        guard case .arm(let b) = try parse("eagain 0xf000") else { Issue.record("not armed"); return }
        #expect(b.failure == .eagain && b.offset == 15 * pageSize && b.remaining == 1)
        for bad in ["", "clear all", "enomem count 0", "enomem count", "enomem count 1 count 1", "enomem range 0 0",
                    "enomem range 1 4096", "enomem range 0 4097", "enomem range 0xf000 8K", "enomem range 0 0x10000 extra",
                    "eagain", "eagain 4097", "eagain 0x10000", "eagain 0 range 0 4096", "eagain -1", "eintr count 99999999999999999999",
                    "ebusy", "enomem\u{1}"] {
            #expect(throws: GmemError.self, "\(bad.debugDescription)") { try parse(bad) }
        }
    }

    @Test func pinRequestValidation() throws {
        let size = 16 * pageSize
        func pages(_ r: GmemPageReference) throws(GmemError) -> PageRange { try r.pages(fileSize: size) }
        #expect(try pages(GmemPageReference(offset: 4096, size: 8192)) == PageRange(1...2))
        let bad: [GmemPageReference] = [
            GmemPageReference(offset: 0, size: 4096, flags: 1),
            GmemPageReference(offset: 0, size: 4096, reserved: [0, 0, 0, 0, 1]),
            GmemPageReference(offset: 0, size: 0),
            GmemPageReference(offset: 1, size: 4096),
            GmemPageReference(offset: 0, size: 4095),
            GmemPageReference(offset: size, size: 4096),
            GmemPageReference(offset: size - 4096, size: 8192),
            GmemPageReference(offset: .max & ~4095, size: 8192),
        ]
        for r in bad { #expect(throws: GmemError.self, "\(r)") { try pages(r) } }
        // Decoding: exactly 64 little-endian bytes.
        var words: [UInt64] = [0x3000, 0x1000, 0, 0, 0, 0, 0, 0]
        let decoded = try words.withUnsafeBytes { b throws(GmemError) in try GmemPageReference(bytes: b) }
        #expect(decoded == GmemPageReference(offset: 0x3000, size: 0x1000))
        words.append(0)
        #expect(throws: GmemError.self) { try words.withUnsafeBytes { b throws(GmemError) in try GmemPageReference(bytes: b) } }
    }

    @Test func kvmStructRoundTripsForCopyBack() throws {
        let words: [UInt64] = [0x1000, 0x2000, 8, 0, 0x5a5a] + Array(repeating: 0, count: 11)
        var args = try words.withUnsafeBytes { b throws(GmemError) in try KVMMemoryAttributes2(bytes: b) }
        args.errorOffset = 0x1000
        let back = args.encode()
        #expect(back.count == 128)
        let again = try back.withUnsafeBytes { b throws(GmemError) in try KVMMemoryAttributes2(bytes: b) }
        #expect(again.offset == 0x1000 && again.size == 0x2000 && again.attributes == 8 && again.errorOffset == 0x1000)
    }

    @Test func errnoMapping() {
        #expect(GmemError.referenced(offset: 0).errno == .resourceTemporarilyUnavailable)
        #expect(GmemError.referenced(offset: 0).setxattrErrno == .resourceBusy)
        #expect(GmemError.injected(.enomem, errorOffset: 0).errno == .noMemory)
        #expect(GmemError.injected(.eagain, errorOffset: 0).setxattrErrno == .resourceBusy)
        #expect(GmemError.injected(.eintr, errorOffset: 4096).errno == .interrupted)
        #expect(GmemError.injected(.eintr, errorOffset: 4096).errorOffset == 4096)
        #expect(GmemError.invalidArgument("x").errorOffset == nil)
        #expect(GmemError.badAddress(offset: 0).errno == .badAddress)
    }
}
