import GmemCore
import GmemTestSupport
import Testing

private let page = Int(pageSize)

private func file(_ pages: Int, _ flags: GmemFlags = [.mmap], budget: MemoryBudget = MemoryBudget(limitBytes: nil)) throws -> GuestMemFile {
    try GuestMemFile(size: UInt64(pages * page), flags: flags, budget: budget)
}

private func read(_ f: GuestMemFile, _ offset: Int, _ count: Int, _ view: GuestMemFile.View = .host, short: Bool = true) throws(GmemError) -> [UInt8] {
    try f.read(offset: UInt64(offset), count: count, view: view, allowShort: short) { Array($0) }
}

private func write(_ f: GuestMemFile, _ offset: Int, _ bytes: [UInt8], _ view: GuestMemFile.View = .host) throws -> Int {
    try bytes.withUnsafeBytes { b in try f.write(offset: UInt64(offset), b, view: view) }
}

private func convert(_ f: GuestMemFile, _ offset: Int, _ size: Int, _ a: MemoryAttributes) throws {
    try f.setAttributes(try ConversionRequest(offset: UInt64(offset), size: UInt64(size), attributes: a.rawValue, fileSize: f.size))
}

private func map(_ f: GuestMemFile) -> [String] {
    var lines: [String] = []
    f.forEachAttributeRange { s, e, a in lines.append("\(s / pageSize)-\(e / pageSize) \(a.name)") }
    return lines
}

@Suite struct GuestMemFileTests {
    @Test func startsPrivateOrShared() throws {
        #expect(map(try file(4)) == ["0-4 private"])
        #expect(map(try file(4, [.initShared])) == ["0-4 shared"])
        #expect(throws: GmemError.privatePage(offset: 0)) { try read(try file(4), 0, 10) }
        #expect(try read(try file(4, [.initShared]), 0, 10) == [UInt8](repeating: 0, count: 10))
    }

    @Test func invalidSizesAndFlags() {
        for size: UInt64 in [0, 1, 4095, 4097] {
            #expect(throws: GmemError.self) { try GuestMemFile(size: size, flags: [], budget: MemoryBudget(limitBytes: nil)) }
        }
        #expect(throws: GmemError.fileTooLarge(1 << 50)) { try GuestMemFile(size: 1 << 50, flags: [], budget: MemoryBudget(limitBytes: nil)) }
        #expect(throws: GmemError.self) { try GuestMemFile(size: 4096, flags: GmemFlags(rawValue: 4), budget: MemoryBudget(limitBytes: nil)) }
    }

    @Test func hostReadStopsAtPrivatePage() throws {
        let f = try file(4, [.initShared])
        #expect(try write(f, 0, Array(repeating: 7, count: 4 * page)) == 4 * page)
        try convert(f, 2 * page, page, .private)
        // Short read up to the boundary when allowed; EACCES when not; EACCES starting on it.
        #expect(try read(f, page, 3 * page).count == page)
        #expect(throws: GmemError.privatePage(offset: UInt64(2 * page))) { try read(f, page, 3 * page, short: false) }
        #expect(throws: GmemError.privatePage(offset: UInt64(2 * page + 5))) { try read(f, 2 * page + 5, 10) }
        // Pages after the private one are readable again.
        #expect(try read(f, 3 * page, page) == Array(repeating: 7, count: page))
        // The guest sees everything.
        #expect(try read(f, 0, 4 * page, .guest) == Array(repeating: 7, count: 4 * page))
    }

    /// A read into the page cache under a cap allocates what it returns, one hole at a time:
    /// a read needing two or more holes is ENOSPC allocating nothing (readahead), a hole past the
    /// cap is ENOSPC, allocated pages cost nothing, private pages are refused first.
    @Test func allocatingReadChargesOneHoleAtATime() throws {
        let budget = MemoryBudget(limitBytes: UInt64(2 * page))
        let f = try file(8, [.mmap, .initShared], budget: budget)
        func read(_ first: Int, _ count: Int) throws(GmemError) -> Int {
            try f.read(offset: UInt64(first * page), count: count * page, view: .host, allowShort: false, allocating: true) { $0.count }
        }
        #expect(throws: GmemError.noSpace("a read would allocate 2 pages at once (readahead)")) { try read(0, 2) }
        #expect(f.allocatedBytes == 0)
        #expect(try read(0, 1) == page && f.allocatedBytes == UInt64(page))
        #expect(try read(0, 1) == page && f.allocatedBytes == UInt64(page))
        #expect(try read(0, 2) == 2 * page && f.allocatedBytes == UInt64(2 * page))   // one hole: fine
        #expect(try read(0, 2) == 2 * page && budget.usedPages == 2)
        #expect(throws: GmemError.noSpace("memory limit reached")) { try read(2, 1) }
        try f.setAttributes(try ConversionRequest(offset: UInt64(3 * page), size: UInt64(page), attributes: 8, fileSize: f.size))
        #expect(throws: GmemError.privatePage(offset: UInt64(3 * page))) { try read(3, 1) }
        // Without allocating (no cap, or read(2) of a file without a page cache): nothing charged.
        #expect(try f.read(offset: UInt64(4 * page), count: 4 * page, view: .host, allowShort: false) { $0.count } == 4 * page)
        #expect(budget.usedPages == 2)
        try f.punchHole(offset: 0, length: UInt64(page))
        #expect(try read(2, 1) == page && budget.usedPages == 2)
    }

    /// What a populate loop gets: shared bytes, zeros for private pages (never their bytes),
    /// and the zeroed pages; nil under a cap when a shared page of the range is unallocated.
    @Test func readHidingPrivateZeroesPrivatePagesOnly() throws {
        let f = try file(4, [.mmap, .initShared], budget: MemoryBudget(limitBytes: UInt64(8 * page)))
        let data = [UInt8](repeating: 0x11, count: 4 * page)
        _ = try data.withUnsafeBytes { try f.write(offset: 0, $0, view: .host) }
        try f.setAttributes(try ConversionRequest(offset: UInt64(page), size: UInt64(2 * page), attributes: 8, fileSize: f.size))
        let got = f.readHidingPrivate(offset: 0, count: 4 * page, allocating: false) { (Array($0), $1) }
        #expect(got?.1 == [1, 2])
        #expect(got?.0 == [UInt8](repeating: 0x11, count: page) + [UInt8](repeating: 0, count: 2 * page) + [UInt8](repeating: 0x11, count: page))
        #expect(f.readHidingPrivate(offset: UInt64(page), count: 100, allocating: true) { (Array($0), $1) }?.0 == [UInt8](repeating: 0, count: 100))
        try f.punchHole(offset: 0, length: UInt64(page))
        #expect(f.readHidingPrivate(offset: 0, count: 2 * page, allocating: true) { $1 } == nil)
        #expect(f.readHidingPrivate(offset: 0, count: 2 * page, allocating: false) { $1 } == [1])
        #expect(f.readHidingPrivate(offset: UInt64(4 * page), count: page, allocating: false) { b, _ in b.count } == 0)
    }

    @Test func hostWriteStopsAtPrivatePage() throws {
        let f = try file(4, [.initShared])
        try convert(f, 2 * page, page, .private)
        #expect(try write(f, page, Array(repeating: 1, count: 2 * page)) == page)
        #expect(throws: GmemError.privatePage(offset: UInt64(2 * page))) { try write(f, 2 * page, [1]) }
        #expect(try read(f, 2 * page, page, .guest) == Array(repeating: 0, count: page))
        #expect(f.allocatedBytes == pageSize)
    }

    @Test func writePastEndIsNoSpace() throws {
        let f = try file(2, [.initShared])
        #expect(throws: GmemError.self) { try write(f, 2 * page, [1]) }
        #expect(try write(f, 2 * page - 1, [1, 2, 3]) == 1)
        #expect(try read(f, 2 * page, 10).isEmpty)
        #expect(try read(f, .max / 2, 10).isEmpty)
    }

    @Test func conversionKeepsContentsAndMerges() throws {
        let f = try file(8)
        #expect(try write(f, 3 * page, Array("secret".utf8), .guest) == 6)
        try convert(f, 3 * page, page, .shared)
        #expect(try read(f, 3 * page, 6) == Array("secret".utf8))
        #expect(map(f) == ["0-3 private", "3-4 shared", "4-8 private"])
        try convert(f, 3 * page, page, .private)
        #expect(map(f) == ["0-8 private"])
        #expect(f.stats.conversions == 2)
        // Converting to what the range already holds changes nothing and is not counted.
        #expect(try f.setAttributes(try ConversionRequest(offset: 0, size: 8 * pageSize, attributes: 8, fileSize: f.size)) == .unchanged)
        #expect(f.stats.conversions == 2)
    }

    @Test func conversionOutcomes() throws {
        let f = try file(4, [.initShared])
        let toPrivate = try ConversionRequest(offset: 0, size: pageSize, attributes: 8, fileSize: f.size)
        let toShared = try ConversionRequest(offset: 0, size: pageSize, attributes: 0, fileSize: f.size)
        #expect(try f.setAttributes(toPrivate) == .becamePrivate)
        #expect(try f.setAttributes(toPrivate) == .unchanged)
        #expect(try f.setAttributes(toShared) == .becameShared)
    }

    @Test func punchHoleZeroesAndKeepsAttributes() throws {
        let f = try file(4, [.initShared])
        _ = try write(f, 0, Array(repeating: 9, count: 4 * page))
        try convert(f, page, page, .private)
        try f.punchHole(offset: 0, length: 2 * pageSize)
        #expect(try read(f, 0, page) == Array(repeating: 0, count: page))
        #expect(try read(f, page, page, .guest) == Array(repeating: 0, count: page))
        #expect(map(f) == ["0-1 shared", "1-2 private", "2-4 shared"])
        #expect(f.allocatedBytes == 2 * pageSize)
        // Unaligned → EINVAL; at or past EOF → nothing, success; crossing EOF → clipped.
        #expect(throws: GmemError.self) { try f.punchHole(offset: 1, length: pageSize) }
        #expect(throws: GmemError.self) { try f.punchHole(offset: 0, length: pageSize - 1) }
        try f.punchHole(offset: 4 * pageSize, length: pageSize)
        try f.punchHole(offset: 100 * pageSize, length: pageSize)
        try f.punchHole(offset: 3 * pageSize, length: 8 * pageSize)
        #expect(f.allocatedBytes == pageSize)
    }

    /// SEEK_DATA/SEEK_HOLE against a per-page model: a hole is a shared, unallocated page; every
    /// private page is data (so that a sparse copy reads it and fails instead of writing zeros).
    @Test func seekTreatsPrivatePagesAsDataAgainstAModel() throws {
        let seed: UInt64 = 0x5EEC_16B5
        var rng = SplitMix64(seed: seed)
        let pages = 48
        for _ in 0..<40 {
            let f = try file(pages, [.initShared])
            var isPrivate = [Bool](repeating: false, count: pages), allocated = isPrivate
            for _ in 0..<Int(rng.next(below: 12)) {
                let start = Int(rng.next(below: UInt64(pages))), count = 1 + Int(rng.next(below: UInt64(pages - start)))
                switch rng.next(below: 4) {
                case 0, 1:
                    let p = rng.next(below: 2) == 0
                    try convert(f, start * page, count * page, p ? .private : .shared)
                    for i in start..<start + count { isPrivate[i] = p }
                case 2:
                    try f.allocate(offset: UInt64(start * page), length: UInt64(count * page))
                    for i in start..<start + count { allocated[i] = true }
                default:
                    try f.punchHole(offset: UInt64(start * page), length: UInt64(count * page))
                    for i in start..<start + count { allocated[i] = false }
                }
            }
            let isData = (0..<pages).map { isPrivate[$0] || allocated[$0] }
            for offset in stride(from: 0, to: pages * page, by: page / 2) {
                let p = offset / page
                let nextData = (p..<pages).first { isData[$0] }.map { max(offset, $0 * page) }
                let nextHole = (p..<pages).first { !isData[$0] }.map { max(offset, $0 * page) } ?? pages * page
                #expect((try? f.seek(offset: UInt64(offset), whence: .data)) == nextData.map(UInt64.init), "seed \(seed) offset \(offset)")
                #expect(try f.seek(offset: UInt64(offset), whence: .hole) == UInt64(nextHole), "seed \(seed) offset \(offset)")
            }
        }
    }

    @Test func allocateAndSeek() throws {
        let f = try file(8, [.initShared])
        #expect(try f.seek(offset: 0, whence: .hole) == 0)
        #expect(throws: GmemError.noSuchOffset(0)) { try f.seek(offset: 0, whence: .data) }
        try f.allocate(offset: 2 * pageSize, length: pageSize)
        _ = try write(f, 5 * page + 10, [1])
        #expect(try f.seek(offset: 0, whence: .data) == 2 * pageSize)
        #expect(try f.seek(offset: 2 * pageSize + 7, whence: .data) == 2 * pageSize + 7)
        #expect(try f.seek(offset: 2 * pageSize, whence: .hole) == 3 * pageSize)
        #expect(try f.seek(offset: 3 * pageSize, whence: .data) == 5 * pageSize)
        #expect(try f.seek(offset: 5 * pageSize, whence: .hole) == 6 * pageSize)
        #expect(throws: GmemError.noSuchOffset(Int64(6 * pageSize))) { try f.seek(offset: 6 * pageSize, whence: .data) }
        #expect(try f.seek(offset: 7 * pageSize, whence: .hole) == 7 * pageSize)
        #expect(throws: GmemError.self) { try f.seek(offset: 8 * pageSize, whence: .hole) }
        #expect(throws: GmemError.self) { try f.allocate(offset: 7 * pageSize, length: 2 * pageSize) }
        #expect(throws: GmemError.self) { try f.allocate(offset: .max, length: pageSize) }
        // kvm_gmem_fallocate checks alignment before either mode: nothing is allocated.
        let before = f.allocatedBytes
        for (offset, length) in [(pageSize - 1, pageSize), (pageSize, pageSize - 1), (pageSize, 1)] {
            #expect(throws: GmemError.self) { try f.allocate(offset: offset, length: length) }
        }
        #expect(f.allocatedBytes == before)
    }

    @Test func memoryBudget() throws {
        let budget = MemoryBudget(limitBytes: 3 * pageSize)
        let a = try file(4, [.initShared], budget: budget)
        let b = try file(4, [.initShared], budget: budget)
        #expect(try write(a, 0, Array(repeating: 1, count: 2 * page)) == 2 * page)
        #expect(throws: GmemError.self) { try write(b, 0, Array(repeating: 2, count: 2 * page)) }
        #expect(b.allocatedBytes == 0)
        #expect(try write(b, 0, [2]) == 1)
        #expect(throws: GmemError.self) { try b.allocate(offset: pageSize, length: pageSize) }
        #expect(try read(a, 0, 2 * page) == Array(repeating: 1, count: 2 * page))
        try a.punchHole(offset: 0, length: pageSize)
        #expect(budget.usedPages == 2)
        try b.allocate(offset: pageSize, length: pageSize)
        #expect(budget.usedPages == 3)
    }

    @Test func statsCountPrivateBytes() throws {
        let f = try file(16)
        try convert(f, 0, 4 * page, .shared)
        try convert(f, 8 * page, 2 * page, .shared)
        let s = f.stats
        #expect(s.privateBytes == 10 * pageSize)
        #expect(s.ranges == 4)
        #expect(s.size == 16 * pageSize)
    }

    /// Random operations against a naive model: bytes and attributes per page.
    @Test(arguments: [1, 2, 3, 4, 5])
    func matchesNaiveModel(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        let pages = 12
        let f = try file(pages, [.initShared])
        var bytes = [UInt8](repeating: 0, count: pages * page)
        var priv = [Bool](repeating: false, count: pages)
        for step in 0..<400 {
            let op = rng.next() % 4
            let first = Int(rng.next() % UInt64(pages)), count = 1 + Int(rng.next() % UInt64(pages - first))
            switch op {
            case 0:
                let isPrivate = rng.next() & 1 == 1
                try convert(f, first * page, count * page, isPrivate ? .private : .shared)
                for p in first..<(first + count) { priv[p] = isPrivate }
            case 1:
                let off = first * page + Int(rng.next() % UInt64(page)), len = 1 + Int(rng.next() % UInt64(2 * page))
                let data = (0..<len).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                let view: GuestMemFile.View = rng.next() & 1 == 1 ? .guest : .host
                let end = min(off + len, pages * page)
                var expected = end - off
                if view == .host, let p = (off / page...((end - 1) / page)).first(where: { priv[$0] }) { expected = max(0, p * page - off) }
                if expected == 0 {
                    #expect(throws: GmemError.self, "seed \(seed) step \(step)") { try write(f, off, data, view) }
                } else {
                    #expect(try write(f, off, data, view) == expected, "seed \(seed) step \(step)")
                    bytes.replaceSubrange(off..<(off + expected), with: data[..<expected])
                }
            case 2:
                try f.punchHole(offset: UInt64(first * page), length: UInt64(count * page))
                bytes.replaceSubrange((first * page)..<((first + count) * page), with: repeatElement(0, count: count * page))
            default:
                let off = first * page + Int(rng.next() % UInt64(page)), len = 1 + Int(rng.next() % UInt64(3 * page))
                let end = min(off + len, pages * page)
                if let p = (off / page...((end - 1) / page)).first(where: { priv[$0] }) {
                    if p * page <= off {
                        #expect(throws: GmemError.self, "seed \(seed) step \(step)") { try read(f, off, len) }
                    } else {
                        #expect(try read(f, off, len) == Array(bytes[off..<(p * page)]), "seed \(seed) step \(step)")
                    }
                } else {
                    #expect(try read(f, off, len) == Array(bytes[off..<end]), "seed \(seed) step \(step)")
                }
            }
        }
        #expect(try read(f, 0, pages * page, .guest) == bytes, "seed \(seed)")
        var expectedMap: [String] = []
        var start = 0
        for p in 1...pages where p == pages || priv[p] != priv[start] {
            expectedMap.append("\(start)-\(p) \(priv[start] ? "private" : "shared")"); start = p
        }
        #expect(map(f) == expectedMap, "seed \(seed)")
    }
}
