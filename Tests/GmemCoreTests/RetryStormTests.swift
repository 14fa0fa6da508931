import GmemCore
import LinuxProc
import Testing

/// The populate-loop detector: `/proc/TID/syscall` classification and the storm bookkeeping.
struct RetryStormTests {
    @Test func classifiesProcSyscall() {
        #if arch(x86_64)
        #expect(RequesterState(procSyscall: "9 0x0 0x10000 0x3 0x8001 0x3 0x0 0x7ffc 0x7f92\n") == .populating(syscall: 9))
        #expect(RequesterState(procSyscall: "149 0x7f 0x10000 0x0 0x0 0x0 0x0 0x7ffc 0x7f92\n") == .populating(syscall: 149))
        for nr in [25, 151, 216, 325] { #expect(RequesterState(procSyscall: "\(nr) 0x0 0x0 0x0 0x0 0x0 0x0 0x7ffc 0x7f92") == .populating(syscall: nr)) }
        #expect(RequesterState(procSyscall: "17 0x3 0x55 0x1000 0x0 0x0 0x0 0x7fff 0x7f67\n") == .otherSyscall(17))   // pread64
        #expect(RequesterState(procSyscall: "0 0x4 0x55 0x2000 0x0 0x0 0x0 0x7fff 0x7f67\n") == .otherSyscall(0))     // read
        #expect(RequesterState(procSyscall: "28 0x7f 0x1000 0x16 0x0 0x0 0x0 0x7fff 0x7f67\n") == .otherSyscall(28))         // madvise
        #endif
        #expect(RequesterState(procSyscall: "-1 0x7ffd3a1c 0x55d0c0de\n") == .userFault)
        #expect(RequesterState(procSyscall: "running\n") == .unknown)
        #expect(RequesterState(procSyscall: "") == .unknown)
        #expect(RequesterState(procSyscall: "-2 0x0") == .unknown)
        #expect(RequesterState(procSyscall: "99999999999999999999999 0x0") == .unknown)
        #expect(RequesterState(nil) == .unknown)   // unreadable
    }

    let r = RetryStormDetector.Request(inode: 2, offset: 0, size: 4096)
    let populating = RequesterState.populating(syscall: SyscallNumber.mmap)

    @Test func inspectsOnlyAfterRepeatedIdenticalRefusals() {
        var d = RetryStormDetector(repeats: 4, window: 1_000)
        for t in 0..<3 as Range<UInt64> { let v = d.refused(tid: 7, request: r, now: t); #expect(!v) }
        let v1 = d.refused(tid: 7, request: r, now: 3)
        #expect(v1)
        // A different READ, or a pause longer than the window, starts over.
        var e = RetryStormDetector(repeats: 4, window: 1_000)
        for t in 0..<3 as Range<UInt64> { _ = e.refused(tid: 7, request: r, now: t) }
        let v2 = e.refused(tid: 7, request: .init(inode: 2, offset: 4096, size: 4096), now: 3)
        #expect(!v2)
        for t in 4..<6 as Range<UInt64> { _ = e.refused(tid: 7, request: r, now: t) }
        let v3 = e.refused(tid: 7, request: r, now: 5_000)
        #expect(!v3)
    }

    @Test func endsOnlyPopulatingTasks() {
        var d = RetryStormDetector(repeats: 2, window: 1_000)
        // A pread loop: inspected every `repeats` refusals, never ended.
        for i in 0..<20_000 as Range<UInt64> where d.refused(tid: 5, request: r, now: i) {
            let v4 = d.decide(tid: 5, state: .otherSyscall(17))
            #expect(!v4)
        }
        _ = d.refused(tid: 6, request: r, now: 0)
        let v5 = d.refused(tid: 6, request: r, now: 1)
        #expect(v5)
        let v6 = d.decide(tid: 6, state: .userFault)
        #expect(!v6)
        let v7 = d.decide(tid: 6, state: .unknown)
        #expect(!v7)
        _ = d.refused(tid: 6, request: r, now: 2)
        let v8 = d.refused(tid: 6, request: r, now: 3)
        #expect(v8)
        let v9 = d.decide(tid: 6, state: populating)
        #expect(v9)
        let again = d.decide(tid: 6, state: populating)
        #expect(!again)   // ended once
        for t in 4..<20 as Range<UInt64> { let v = d.refused(tid: 6, request: r, now: t); #expect(!v) }
        // After a pause longer than the window, the thread id may be another task's: a new storm.
        _ = d.refused(tid: 6, request: r, now: 10_000)
        let fresh = d.refused(tid: 6, request: r, now: 10_001)
        #expect(fresh)
    }

    @Test func tracksABoundedNumberOfTasks() {
        var d = RetryStormDetector(repeats: 3, window: 1_000_000, capacity: 4)
        for tid in 1...100 as ClosedRange<Int32> { _ = d.refused(tid: tid, request: r, now: UInt64(tid)) }
        #expect(d.trackedTasks == 4)
        // The most recent tasks are kept: task 100 continues its storm.
        let v10 = d.refused(tid: 100, request: r, now: 101)
        #expect(!v10)
        let v11 = d.refused(tid: 100, request: r, now: 102)
        #expect(v11)
        // Clocks going backwards never trap.
        let v12 = d.refused(tid: 100, request: r, now: 0)
        #expect(!v12)
    }

    /// A storm answered another way (zeros) is forgotten: the task's next refusals start over.
    @Test func forgetStartsOver() {
        var d = RetryStormDetector(repeats: 2, window: 100, capacity: 4)
        let r = RetryStormDetector.Request(inode: 1, offset: 0, size: 4096)
        let a = d.refused(tid: 7, request: r, now: 1), b = d.refused(tid: 7, request: r, now: 2)
        #expect(!a && b)
        let first = d.decide(tid: 7, state: .populating(syscall: 149))
        #expect(first)
        d.forget(tid: 7)
        #expect(d.trackedTasks == 0)
        let c = d.refused(tid: 7, request: r, now: 3), e = d.refused(tid: 7, request: r, now: 4)
        #expect(!c && e)
        let second = d.decide(tid: 7, state: .populating(syscall: 149))
        #expect(second)   // not "ended once": the storm was forgotten
    }
}

private extension RequesterState {
    /// The state of a thread whose `/proc/TID/syscall` reads `text`.
    init(procSyscall text: String) { self.init(ProcSyscall(text: text[...])) }
}
