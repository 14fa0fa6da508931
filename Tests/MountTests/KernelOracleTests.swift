import Foundation
import GmemTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The kernel as the oracle: `Resources/gmem_oracle.c` runs one list of cases (creation, fstat,
/// setattr, fsync, lseek, read/write, every fallocate mode, locks, mmap, faults, madvise,
/// mprotect, mremap, msync, the get_user_pages paths, conversions) on fresh files, once on the
/// kernel's own guest_memfd and once on gmemfs, and the outcomes are compared line by line.
///
/// The kernel's side is the live kernel where this machine's KVM has guest_memfd, else the
/// newest recording in `Resources/oracle/` (``OracleRecording``), made on a machine that has it.
/// Where both exist, the live answers must equal the recording of that kernel: a changed answer
/// fails until the recording is refreshed on purpose (`Scripts/oracle-record.sh`, which sets
/// `GMEM_ORACLE_RECORD=1`). A test with neither is skipped, with the reason, never passed.
///
/// Every difference must be listed in the divergence tables of docs/semantics.md ("Differences
/// from the kernel"), whose first column names the cases it covers; a row that no longer
/// matches any difference fails too, so the table cannot go stale.
@Suite(.serialized, .enabled(if: FUSE.available))
struct KernelOracleTests {
    static let sourceDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    static let recordingsDirectory = sourceDirectory.appendingPathComponent("Resources/oracle").path

    /// Compiles the oracle once per test run.
    static let program: Result<String, HarnessError> = {
        do {
            let dir = try makeTemporaryDirectory("gmem-oracle")
            let binary = dir + "/gmem_oracle"
            return .success(try CProgram.compile("gmem_oracle.c", to: binary, flags: ["-std=gnu11", "-Wall", "-Wextra", "-Werror"]))
        } catch {
            return .failure(HarnessError("\(error)"))
        }
    }()

    /// The live kernel: its answers as a recording of today, or why it cannot answer.
    enum LiveKernel { case answers(OracleRecording), absent(reason: String) }

    static let liveKernel: Result<LiveKernel, HarnessError> = {
        do {
            let binary = try program.get()
            let r = try run([binary, "kernel"], timeout: 300)
            guard r.succeeded else { return .failure(HarnessError("oracle (kernel) failed: \(r)")) }
            if r.output.hasPrefix("SKIP:") {
                return .success(.absent(reason: r.output.dropFirst(5).trimmingCharacters(in: .whitespacesAndNewlines)))
            }
            return .success(.answers(try OracleRecording(oracleOutput: r.output, recorded: today())))
        } catch {
            return .failure(HarnessError("\(error)"))
        }
    }()

    /// The live kernel's answers, nil where this machine's KVM has no guest_memfd.
    static var live: Result<OracleRecording?, HarnessError> {
        liveKernel.map { if case .answers(let r) = $0 { r } else { nil } }
    }

    static var liveSkipReason: String {
        if case .success(.absent(let reason)) = liveKernel { return reason }
        return ""
    }

    /// The committed recordings (an unreadable one, or a fixture among them, is a failure).
    static let recordings: Result<[(file: String, recording: OracleRecording)], HarnessError> = {
        do { return .success(try OracleRecording.all(in: recordingsDirectory)) } catch { return .failure(HarnessError("\(error)")) }
    }()

    /// Whether the live kernel can be asked (a failure to ask counts: the test then fails).
    static var liveAvailable: Bool {
        if case .success(nil) = live { return false }
        return true
    }

    /// Whether gmemfs can be compared with a kernel here: live, or through a recording.
    static var canCompare: Bool {
        if liveAvailable { return true }
        if case .success(let all) = recordings { return !all.isEmpty }
        return true
    }

    static let noKernel: Comment = "no guest_memfd on this machine (KVM_CAP_GUEST_MEMFD = 0 or no /dev/kvm) and no recording in Tests/MountTests/Resources/oracle/: record one with Scripts/oracle-record.sh on a machine that has it"

    /// The kernel's answers gmemfs is compared with, and where they come from.
    static func reference() throws -> (recording: OracleRecording, source: String) {
        if let l = try live.get() { return (l, "the live kernel \(l.kernelRelease)") }
        guard let r = OracleRecording.newest(try recordings.get()) else { throw HarnessError("no kernel to compare with") }
        return (r.recording, "the recording \(r.file) (kernel \(r.recording.kernelRelease), recorded \(r.recording.recorded); \(liveSkipReason.isEmpty ? "no live guest_memfd" : "live: " + liveSkipReason))")
    }

    static func today() -> String {
        var t = time(nil)
        var tm = tm()
        gmtime_r(&t, &tm)
        return String(format: "%04d-%02d-%02d", Int(tm.tm_year) + 1900, Int(tm.tm_mon) + 1, Int(tm.tm_mday))
    }

    /// Lines "GROUP/CASE: OUTCOME" under "== VARIANT" headers → ["VARIANT GROUP/CASE": OUTCOME].
    /// A case printed twice (a call and the state after it) gets a `'` per repetition.
    static func parse(_ output: String) -> [String: String] {
        Dictionary(parseInOrder(output), uniquingKeysWith: { a, _ in a })
    }

    /// ``parse(_:)`` in the order the oracle printed the cases; `# ` lines (the run's
    /// description) are skipped.
    static func parseInOrder(_ output: String) -> [(key: String, outcome: String)] {
        var outcomes: [(key: String, outcome: String)] = []
        var seen = Set<String>()
        var variant = "create"
        for line in output.split(separator: "\n") where !line.hasPrefix("# ") {
            if line.hasPrefix("== ") { variant = String(line.dropFirst(3)); continue }
            guard let colon = line.range(of: ": ") else { continue }
            var key = "\(variant) \(line[..<colon.lowerBound])"
            while seen.contains(key) { key += "'" }
            seen.insert(key)
            outcomes.append((key, String(line[colon.upperBound...])))
        }
        return outcomes
    }

    /// A divergence table of docs/semantics.md: each row's first column lists backquoted
    /// `fnmatch` patterns over "VARIANT GROUP/CASE".
    struct Divergence { let patterns: [String]; let row: String }

    static func divergences(heading: String) throws -> [Divergence] {
        let doc = try String(contentsOfFile: sourceDirectory.appendingPathComponent("../../docs/semantics.md").path, encoding: .utf8)
        guard let start = doc.range(of: "\n" + heading + "\n") else { throw HarnessError("docs/semantics.md has no '\(heading)'") }
        var rows: [Divergence] = []
        for line in doc[start.upperBound...].split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("#") { break }
            guard line.hasPrefix("| `") else { continue }
            let first = line.dropFirst(2).prefix { $0 != "|" }
            let patterns = first.split(separator: "`", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 1 }.map { String($0.element) }
            rows.append(Divergence(patterns: patterns, row: String(line)))
        }
        return rows
    }

    /// Runs the oracle on a gmemfs mount started with `arguments` (plus `--no-in-place` when the
    /// kernel compared with has no in-place conversion), compares with the kernel, and checks
    /// every difference against the table under `heading`.
    func compare(arguments: [String], heading: String) throws {
        let (reference, source) = try Self.reference()
        let kernel = reference.outcomes
        let binary = try Self.program.get()
        let mode = arguments + (reference.inPlaceConversion ? [] : ["--no-in-place"])
        let m = try GmemMount(["--file", "unused:4K"] + mode)
        defer { m.unmount() }
        let r = try run([binary, "gmemfs", m.path], timeout: 300)
        #expect(r.succeeded, "\(r)")
        let gmemfs = Self.parse(r.output)
        let onlyOne = Set(kernel.keys).symmetricDifference(gmemfs.keys).sorted()
        #expect(onlyOne.isEmpty, "cases printed by one run only: \(onlyOne)")
        let table = try Self.divergences(heading: heading)
        #expect(!table.isEmpty)
        var covered = Set<String>()
        var unexplained: [String] = []
        for key in kernel.keys.sorted() where kernel[key] != gmemfs[key] {
            let rows = table.filter { $0.patterns.contains { fnmatch($0, key, 0) == 0 } }
            if rows.isEmpty { unexplained.append("\(key): kernel \(kernel[key]!), gmemfs \(gmemfs[key] ?? "(missing)")") }
            rows.forEach { covered.insert($0.row) }
        }
        #expect(unexplained.isEmpty, "differences from \(source) not in docs/semantics.md '\(heading)':\n\(unexplained.joined(separator: "\n"))")
        let stale = table.filter { !covered.contains($0.row) }.map(\.row)
        #expect(stale.isEmpty, "rows of '\(heading)' that no difference from \(source) needs any more:\n\(stale.joined(separator: "\n"))")
        let same = kernel.keys.filter { kernel[$0] == gmemfs[$0] }.count
        print("kernel oracle \(mode.isEmpty ? "default" : mode.joined(separator: " ")) against \(source): \(kernel.count) outcomes, \(same) same, \(kernel.count - same) documented differences")
    }

    @Test(.enabled(if: canCompare, noKernel))
    func defaultModeDiffersFromTheKernelOnlyAsDocumented() throws {
        try compare(arguments: [], heading: "### Default mode")
    }

    @Test(.enabled(if: canCompare, noKernel))
    func kernelCompatModeDiffersOnlyWhereFUSEDecides() throws {
        try compare(arguments: ["--kernel-compat"], heading: "### Kernel-compat mode (`--kernel-compat`)")
    }

    /// Where the real thing exists: its answers must be the recorded ones. `GMEM_ORACLE_RECORD=1`
    /// (Scripts/oracle-record.sh) writes the recording of this kernel instead.
    @Test(.enabled(if: liveAvailable, "no guest_memfd on this machine (KVM_CAP_GUEST_MEMFD = 0 or no /dev/kvm): no live kernel to record or check against the recordings"))
    func theLiveKernelAnswersAsRecorded() throws {
        let live = try #require(try Self.live.get())
        let file = Self.recordingsDirectory + "/" + OracleRecording.fileName(release: live.kernelRelease)
        if ProcessInfo.processInfo.environment["GMEM_ORACLE_RECORD"] == "1" {
            try FileManager.default.createDirectory(atPath: Self.recordingsDirectory, withIntermediateDirectories: true)
            try live.text.write(toFile: file, atomically: true, encoding: .utf8)
            print("kernel oracle: recorded \(live.cases.count) outcomes of kernel \(live.kernelRelease) in \(file)")
            return
        }
        let all = try Self.recordings.get()
        let recorded = try #require(all.first { $0.recording.kernelRelease == live.kernelRelease },
                                    "no recording of kernel \(live.kernelRelease): run Scripts/oracle-record.sh and commit \(file)")
        let old = recorded.recording.outcomes, now = live.outcomes
        let changed = Set(old.keys).union(now.keys).sorted().filter { old[$0] != now[$0] }
            .map { "\($0): recorded \(old[$0] ?? "(absent)"), now \(now[$0] ?? "(absent)")" }
        #expect(changed.isEmpty, "kernel \(live.kernelRelease) answers differently from \(recorded.file) (recorded \(recorded.recording.recorded)); if the change is expected, refresh it with Scripts/oracle-record.sh and commit:\n\(changed.joined(separator: "\n"))")
        #expect(Array(live.headers.filter { $0.name != "recorded" }.map(\.value)) == recorded.recording.headers.filter { $0.name != "recorded" }.map(\.value),
                "the kernel's description changed since \(recorded.file): \(live.headers) vs \(recorded.recording.headers)")
        print("kernel oracle: kernel \(live.kernelRelease) answers as \(recorded.file) records (\(now.count) outcomes)")
    }
}
