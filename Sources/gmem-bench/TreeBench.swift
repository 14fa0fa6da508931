import ArgumentParser
@_spi(Benchmarks) import GmemCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The rangetree anchor workload (v1, restated in docs/performance.md, "Attribute tree") on
/// `AttributeTree`.
struct TreeBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tree",
        abstract: "AttributeTree on the rangetree anchor workload (v1, docs/performance.md).")

    @Flag(help: "Only check the checksums (and a full page-by-page verification); exit non-zero on mismatch.")
    var verify = false

    @Option(help: "Number of runs (each with a fresh tree); per-field medians are printed.")
    var runs = 1

    static let n: UInt64 = 1 << 20
    static let privateValue: UInt64 = 8
    static let sharedValue: UInt64 = 0
    static let w1Count = 1_000_000
    static let w2Count = 10_000_000
    static let w3Count = 1_000_000
    static let expected = (ranges: 31250, fnv: UInt64(0x720d_ac33_cf41_a4ca),
                           loadSum: UInt64(21_043_243_722_056), scanSum: UInt64(8_602_724))

    struct StoreOp { var first: UInt32; var last: UInt32; var value: UInt64 }

    struct Ops {
        var w1: [StoreOp] = []
        var w2: [UInt32] = []
        var w3: [UInt32] = []
    }

    struct Result {
        var storeNs = 0.0, loadNs = 0.0, scanNs = 0.0
        var ranges = 0
        var fnv: UInt64 = 0, loadSum: UInt64 = 0, scanSum: UInt64 = 0
        var rssKB = 0, peakKB = 0, structBytes = 0
    }

    func validate() throws {
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
    }

    func run() throws {
        let ops = Self.generate()
        var results: [Result] = []
        for _ in 0..<runs { results.append(Self.runOnce(ops)) }
        let r = results[0]
        let ok = results.allSatisfy {
            $0.ranges == Self.expected.ranges && $0.fnv == Self.expected.fnv
                && $0.loadSum == Self.expected.loadSum && $0.scanSum == Self.expected.scanSum
        }
        let checks = "ranges=\(r.ranges) state_fnv=0x\(hex16(r.fnv)) load_sum=\(r.loadSum) scan_sum=\(r.scanSum)"
        if verify {
            let pages = Self.verifyPages(ops)
            print("impl=swift_btree \(checks) verified=\(ok && pages ? 1 : 0)")
            if !(ok && pages) {
                printErr("gmem-bench tree: VERIFY FAILED (expected ranges=31250 state_fnv=0x720dac33cf41a4ca "
                    + "load_sum=21043243722056 scan_sum=8602724, page check \(pages ? "ok" : "failed"))")
                throw ExitCode.failure
            }
            return
        }
        func med(_ f: (Result) -> Double) -> Double {
            let v = results.map(f).sorted()
            return v[(v.count - 1) / 2]
        }
        let bytesPerRange = med { Double($0.rssKB) } * 1024 / Double(max(r.ranges, 1))
        print("impl=swift_btree store_ns=\(fmt2(med { $0.storeNs })) load_ns=\(fmt2(med { $0.loadNs }))"
            + " scan_ns=\(fmt2(med { $0.scanNs })) \(checks) rss_kb=\(Int(med { Double($0.rssKB) }))"
            + " peak_kb=\(Int(med { Double($0.peakKB) })) rss_bytes_per_range=\(fmt1(bytesPerRange))"
            + " struct_bytes=\(r.structBytes) runs=\(runs)")
        if !ok {
            printErr("gmem-bench tree: CHECKSUM MISMATCH")
            throw ExitCode.failure
        }
    }

    /// All operations, drawn from one splitmix64 stream (seed 42) in the workload's order.
    static func generate() -> Ops {
        var state: UInt64 = 42
        @inline(__always) func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        var ops = Ops()
        ops.w1.reserveCapacity(w1Count)
        ops.w2.reserveCapacity(w2Count)
        ops.w3.reserveCapacity(w3Count)
        for _ in 0..<w1Count {
            let first = next() & (n - 1)
            let len = 1 + next() % 64
            let value = next() & 1 != 0 ? privateValue : sharedValue
            let last = min(first + len - 1, n - 1)
            ops.w1.append(StoreOp(first: UInt32(first), last: UInt32(last), value: value))
        }
        for _ in 0..<w2Count { ops.w2.append(UInt32(next() & (n - 1))) }
        for _ in 0..<w3Count { ops.w3.append(UInt32(next() & (n - 1))) }
        return ops
    }

    /// Faults in the code paths (this binary and the Swift runtime are file-backed pages that
    /// count in VmRSS) on a throwaway tree, so that the baseline below measures data only.
    static func warmUp(_ ops: Ops) {
        var tree = AttributeTree(pageCount: n, value: privateValue)
        var sink: UInt64 = 0
        for op in ops.w1.prefix(20_000) { tree.store(UInt64(op.first)...UInt64(op.last), op.value) }
        for i in ops.w2.prefix(1000) { sink &+= tree.load(UInt64(i)) }
        for i in ops.w3.prefix(1000) { sink &+= UInt64(tree.countRanges(overlapping: UInt64(i)...UInt64(i) + 255)) }
        tree.forEachRange(overlapping: 0...(n - 1)) { _, v in sink &+= v; return true }
        _ = statusKB("VmRSS")
        sink &+= UInt64(nowNs())
        if sink == 42 { printErr("") }
    }

    static func runOnce(_ ops: Ops) -> Result {
        var r = Result()
        warmUp(ops)
        let rss0 = statusKB("VmRSS")
        resetHWM()
        var tree = AttributeTree(pageCount: n, value: privateValue)
        let debug = getenv("GMEM_BENCH_DEBUG") != nil
        if debug { printErr("rss0 \(rss0) after init \(statusKB("VmRSS")) anon \(statusKB("RssAnon")) file \(statusKB("RssFile"))") }

        let t0 = nowNs()
        ops.w1.withUnsafeBufferPointer { w1 in
            for op in w1 { tree.store(UInt64(op.first)...UInt64(op.last), op.value) }
        }
        let t1 = nowNs()
        let rss1 = statusKB("VmRSS")
        if debug { printErr("anon \(statusKB("RssAnon")) file \(statusKB("RssFile"))") }
        var loadSum: UInt64 = 0
        ops.w2.withUnsafeBufferPointer { w2 in
            for i in w2 {
                let x = UInt64(i)
                loadSum &+= tree.load(x) &* (x &+ 1)
            }
        }
        let t2 = nowNs()
        var scanSum: UInt64 = 0
        ops.w3.withUnsafeBufferPointer { w3 in
            for i in w3 {
                let x = UInt64(i)
                scanSum &+= UInt64(tree.countRanges(overlapping: x...min(x &+ 255, n &- 1)))
            }
        }
        let t3 = nowNs()
        let hwm = statusKB("VmHWM")

        var fnv: UInt64 = 0xcbf2_9ce4_8422_2325
        var ranges = 0
        tree.forEachRange(overlapping: 0...(n - 1)) { range, value in
            fnv = fnv64(fnv, range.lowerBound)
            fnv = fnv64(fnv, range.upperBound)
            fnv = fnv64(fnv, value)
            ranges += 1
            return true
        }
        r.storeNs = (t1 - t0) / Double(w1Count)
        r.loadNs = (t2 - t1) / Double(w2Count)
        r.scanNs = (t3 - t2) / Double(w3Count)
        r.ranges = ranges
        r.fnv = fnv
        r.loadSum = loadSum
        r.scanSum = scanSum
        r.rssKB = rss1 - rss0
        r.peakKB = hwm - rss0
        r.structBytes = tree.memoryFootprint
        if getenv("GMEM_BENCH_DEBUG") != nil { printErr("pool \(tree._poolStatistics)") }
        return r
    }

    /// Rebuilds the byte-per-page reference and checks every page, the range walk and the
    /// tree's own invariants (untimed).
    static func verifyPages(_ ops: Ops) -> Bool {
        var tree = AttributeTree(pageCount: n, value: privateValue)
        var ref = [UInt8](repeating: UInt8(privateValue), count: Int(n))
        for op in ops.w1 {
            tree.store(UInt64(op.first)...UInt64(op.last), op.value)
            for i in Int(op.first)...Int(op.last) { ref[i] = UInt8(op.value) }
        }
        tree.checkInvariants()
        for i in 0..<Int(n) where tree.load(UInt64(i)) != UInt64(ref[i]) { return false }
        var ok = true
        var expectedFirst: UInt64 = 0
        tree.forEachRange(overlapping: 0...(n - 1)) { range, value in
            if range.lowerBound != expectedFirst { ok = false }
            for i in range where UInt64(ref[Int(i)]) != value { ok = false }
            expectedFirst = range.upperBound + 1
            return ok
        }
        return ok && expectedFirst == n
    }
}

// MARK: - Helpers (no Foundation)

private func fnv64(_ h0: UInt64, _ v: UInt64) -> UInt64 {
    var h = h0
    for i in 0..<8 {
        h ^= (v >> (8 * UInt64(i))) & 0xff
        h &*= 0x0000_0100_0000_01b3
    }
    return h
}

private func nowNs() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) * 1e9 + Double(ts.tv_nsec)
}

/// kB value of a "Key:" line in /proc/self/status, or -1.
private func statusKB(_ key: String) -> Int {
    guard let f = fopen("/proc/self/status", "r") else { return -1 }
    defer { fclose(f) }
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, Int32(line.count), f) != nil {
        let bytes = line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        let s = String(decoding: bytes, as: UTF8.self)
        if s.hasPrefix(key + ":") {
            return Int(s.dropFirst(key.count + 1).filter { $0.isNumber }) ?? -1
        }
    }
    return -1
}

private func resetHWM() {
    guard let f = fopen("/proc/self/clear_refs", "w") else { return }
    fputs("5", f)
    fclose(f)
}

private func hex16(_ v: UInt64) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: 16 - s.count) + s
}

private func fmt2(_ x: Double) -> String { fixed(x, 2) }
private func fmt1(_ x: Double) -> String { fixed(x, 1) }
private func fixed(_ x: Double, _ digits: Int) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let v = (x * scale).rounded()
    let whole = Int(v / scale)
    let frac = Int(v) - whole * Int(scale)
    let fs = String(frac)
    return "\(whole).\(String(repeating: "0", count: digits - fs.count))\(fs)"
}

private func printErr(_ s: String) {
    var message = s + "\n"
    message.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}
