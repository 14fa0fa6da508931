import Foundation
import GmemTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The kernel as the oracle: `Resources/gmem_oracle.c` runs one list of cases (creation, fstat,
/// setattr, fsync, lseek, read/write, every fallocate mode, locks, mmap, faults, madvise,
/// mprotect, mremap, msync, the get_user_pages paths) on fresh files, once on the kernel's own
/// guest_memfd and once on gmemfs, and the outcomes are compared line by line.
///
/// Every difference must be listed in the divergence tables of docs/semantics.md ("Differences
/// from the kernel"), whose first column names the cases it covers; a row that no longer
/// matches any difference fails too, so the table cannot go stale. Without /dev/kvm (or without
/// guest_memfd with MMAP and INIT_SHARED) the suite says so and checks nothing: it never fakes
/// the kernel's side.
@Suite(.serialized, .enabled(if: FUSE.available))
struct KernelOracleTests {
    static let sourceDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()

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

    /// The kernel's answers, or nil (with the reason printed) where this machine has no guest_memfd.
    static let kernelOutcomes: Result<[String: String]?, HarnessError> = {
        do {
            let binary = try program.get()
            let r = try run([binary, "kernel"], timeout: 300)
            guard r.succeeded else { return .failure(HarnessError("oracle (kernel) failed: \(r)")) }
            if r.output.hasPrefix("SKIP:") {
                print("kernel oracle: not run on this machine — \(r.output.trimmingCharacters(in: .whitespacesAndNewlines))")
                return .success(nil)
            }
            return .success(parse(r.output))
        } catch {
            return .failure(HarnessError("\(error)"))
        }
    }()

    /// Lines "GROUP/CASE: OUTCOME" under "== VARIANT" headers → ["VARIANT GROUP/CASE": OUTCOME].
    /// A case printed twice (a call and the state after it) gets a `'` per repetition.
    static func parse(_ output: String) -> [String: String] {
        var outcomes: [String: String] = [:]
        var variant = "create"
        for line in output.split(separator: "\n") where !line.hasPrefix("# ") {
            if line.hasPrefix("== ") { variant = String(line.dropFirst(3)); continue }
            guard let colon = line.range(of: ": ") else { continue }
            var key = "\(variant) \(line[..<colon.lowerBound])"
            while outcomes[key] != nil { key += "'" }
            outcomes[key] = String(line[colon.upperBound...])
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

    /// Runs the oracle on a gmemfs mount started with `arguments`, compares with the kernel, and
    /// checks every difference against the table under `heading`.
    func compare(arguments: [String], heading: String) throws {
        guard let kernel = try Self.kernelOutcomes.get() else { return }
        let binary = try Self.program.get()
        let m = try GmemMount(["--file", "unused:4K"] + arguments)
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
        #expect(unexplained.isEmpty, "differences not in docs/semantics.md '\(heading)':\n\(unexplained.joined(separator: "\n"))")
        let stale = table.filter { !covered.contains($0.row) }.map(\.row)
        #expect(stale.isEmpty, "rows of '\(heading)' that no difference needs any more:\n\(stale.joined(separator: "\n"))")
        let same = kernel.keys.filter { kernel[$0] == gmemfs[$0] }.count
        print("kernel oracle \(arguments.isEmpty ? "default" : arguments.joined(separator: " ")): \(kernel.count) outcomes, \(same) same, \(kernel.count - same) documented differences")
    }

    @Test func defaultModeDiffersFromTheKernelOnlyAsDocumented() throws {
        try compare(arguments: [], heading: "### Default mode")
    }

    @Test func kernelCompatModeDiffersOnlyWhereFUSEDecides() throws {
        try compare(arguments: ["--kernel-compat"], heading: "### Kernel-compat mode (`--kernel-compat`)")
    }
}
