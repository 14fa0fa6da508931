@testable import GmemCore
import Testing

/// `PageRange`: inclusive page indices; the bytes it covers come back as offset and size.
@Suite struct PageRangeTests {
    @Test func pagesAndBytes() {
        let r = PageRange(coveringOffset: 4096 + 1, size: 8192)   // bytes 4097..<12289: pages 1...3
        #expect(r.first == 1 && r.last == 3 && r.count == 3 && r.indices == 1...3)
        #expect(r.offset == 4096 && r.size == 3 * 4096)
        #expect(PageRange(coveringOffset: 0, size: 1) == PageRange(first: 0, last: 0))
        #expect(r.contains(1) && r.contains(3) && !r.contains(0) && !r.contains(4))
        #expect(r.overlaps(PageRange(3...9)) && !r.overlaps(PageRange(4...9)) && r.overlaps(PageRange(0...1)))
        #expect(Array(r) == [1, 2, 3] && r.description == "1...3")
        // The last page of the largest file the tree can hold.
        let top = PageRange(first: UInt64.max, last: UInt64.max)
        #expect(top.count == 1 && top.contains(UInt64.max))
    }
}
