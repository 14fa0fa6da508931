import Foundation
import GmemTestSupport

/// The kernel oracle's answers, recorded on a machine whose KVM has guest_memfd and committed
/// under `Tests/MountTests/Resources/oracle/`, so that machines without it still compare gmemfs
/// against the real thing (docs/testing.md, "The kernel oracle's recordings").
///
/// The file is text, one case a line, in the order the oracle ran them:
/// ```
/// # Comment lines start with '#'; "# NAME: VALUE" with NAME in [a-z-] is a header.
/// # kernel-release: 6.18.0            (uname -r)           required
/// # machine: x86_64                   (uname -m)           required
/// # guest-memfd-flags: 0x3            KVM_CAP_GUEST_MEMFD_FLAGS        required
/// # in-place-conversion: yes|no       KVM_SET_MEMORY_ATTRIBUTES2 exists   required
/// # recorded: 2026-12-06              UTC date             required
/// # fixture: REASON                   only in hand-made files: never a recording
/// VARIANT GROUP/CASE<TAB>OUTCOME
/// ```
/// Keys are the oracle's (``KernelOracleTests/parse(_:)``: a case printed twice gets a `'`).
/// Parsing is validate-first: any malformed line, a repeated key or header, or a missing header
/// is an error naming the line, and nothing is returned.
struct OracleRecording: Equatable {
    static let requiredHeaders = ["kernel-release", "machine", "guest-memfd-flags", "in-place-conversion", "recorded"]
    static let optionalHeaders = ["fixture", "private-memory-vm"]

    /// Header values by name, and their order in the file.
    var headers: [(name: String, value: String)]
    /// Outcomes in the oracle's order.
    var cases: [(key: String, outcome: String)]

    static func == (a: Self, b: Self) -> Bool {
        a.headers.elementsEqual(b.headers, by: ==) && a.cases.elementsEqual(b.cases, by: ==)
    }

    func header(_ name: String) -> String? { headers.first { $0.name == name }?.value }
    var kernelRelease: String { header("kernel-release") ?? "?" }
    var recorded: String { header("recorded") ?? "?" }
    /// Whether the recorded kernel has KVM_SET_MEMORY_ATTRIBUTES2 (gmemfs then runs without
    /// `--no-in-place` for the comparison).
    var inPlaceConversion: Bool { header("in-place-conversion") == "yes" }
    /// A hand-made file (the format test's): never taken for a kernel's answers.
    var isFixture: Bool { header("fixture") != nil }
    var outcomes: [String: String] { Dictionary(cases.map { ($0.key, $0.outcome) }, uniquingKeysWith: { a, _ in a }) }

    struct FormatError: Error, CustomStringConvertible {
        let line: Int, why: String
        var description: String { "line \(line): \(why)" }
    }

    init(headers: [(name: String, value: String)], cases: [(key: String, outcome: String)]) {
        self.headers = headers; self.cases = cases
    }

    init(text: String) throws {
        var headers: [(name: String, value: String)] = []
        var cases: [(key: String, outcome: String)] = []
        var seen = Set<String>()
        let known = Set(Self.requiredHeaders + Self.optionalHeaders)
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let n = i + 1
            if line.isEmpty { continue }
            if line.hasPrefix("#") {
                guard let (name, value) = Self.header(line) else { continue }
                guard known.contains(name) else { throw FormatError(line: n, why: "unknown header '\(name)'") }
                guard !headers.contains(where: { $0.name == name }) else { throw FormatError(line: n, why: "header '\(name)' twice") }
                guard !value.isEmpty else { throw FormatError(line: n, why: "header '\(name)' has no value") }
                headers.append((name, value))
                continue
            }
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard fields.count == 2 else { throw FormatError(line: n, why: "expected 'KEY<TAB>OUTCOME'") }
            let key = String(fields[0]), outcome = String(fields[1])
            guard let space = key.firstIndex(of: " "), key[space...].contains("/") else {
                throw FormatError(line: n, why: "key '\(key)' is not 'VARIANT GROUP/CASE'")
            }
            guard !outcome.isEmpty else { throw FormatError(line: n, why: "empty outcome for '\(key)'") }
            guard seen.insert(key).inserted else { throw FormatError(line: n, why: "case '\(key)' twice") }
            cases.append((key, outcome))
        }
        for name in Self.requiredHeaders where !headers.contains(where: { $0.name == name }) {
            throw FormatError(line: 0, why: "missing header '\(name)'")
        }
        guard !cases.isEmpty else { throw FormatError(line: 0, why: "no cases") }
        self.init(headers: headers, cases: cases)
    }

    /// `# name: value` with a name of `[a-z-]`; nil for a comment.
    static func header(_ line: Substring) -> (String, String)? {
        guard line.hasPrefix("# "), let colon = line.range(of: ": ") else { return nil }
        let name = line[line.index(line.startIndex, offsetBy: 2)..<colon.lowerBound]
        guard !name.isEmpty, name.allSatisfy({ ("a"..."z").contains($0) || $0 == "-" }) else { return nil }
        return (String(name), String(line[colon.upperBound...]).trimmingCharacters(in: .whitespaces))
    }

    /// A recording of the raw output of `gmem_oracle kernel` (its `# ` header lines and cases),
    /// made on `date` (`YYYY-MM-DD`).
    init(oracleOutput: String, recorded date: String) throws {
        var text = Self.preamble
        for line in oracleOutput.split(separator: "\n") {
            if let (name, value) = Self.header(line) { text += "# \(name): \(value)\n" }
        }
        text += "# recorded: \(date)\n"
        for (key, outcome) in KernelOracleTests.parseInOrder(oracleOutput) { text += "\(key)\t\(outcome)\n" }
        try self.init(text: text)
    }

    static let preamble = """
        # gmem_oracle recording: the answers of a kernel's own guest_memfd, one case a line
        # (VARIANT GROUP/CASE, a tab, the outcome). Written by Scripts/oracle-record.sh on a
        # machine whose KVM has guest_memfd; refreshed on purpose, never edited by hand.

        """

    /// The file's text: the preamble, the headers in their order, the cases.
    var text: String {
        var s = Self.preamble
        for h in headers { s += "# \(h.name): \(h.value)\n" }
        for c in cases { s += "\(c.key)\t\(c.outcome)\n" }
        return s
    }

    /// The file name a recording of `release` gets.
    static func fileName(release: String) -> String {
        "kernel-" + String(release.map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_" ? $0 : "_" }) + ".tsv"
    }

    /// Every recording in `directory` (`*.tsv`), by file name. A file that does not parse, or a
    /// fixture, is an error: the directory holds kernels' answers only.
    static func all(in directory: String) throws -> [(file: String, recording: OracleRecording)] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".tsv") }.sorted()
        return try names.map { name in
            let text = try String(contentsOfFile: directory + "/" + name, encoding: .utf8)
            let r: OracleRecording
            do { r = try OracleRecording(text: text) } catch { throw HarnessError("\(directory)/\(name): \(error)") }
            if r.isFixture { throw HarnessError("\(directory)/\(name) is a fixture; fixtures live in oracle-fixture/") }
            return (name, r)
        }
    }

    /// The recording to compare with: the one of `release` if there is one, else the most
    /// recently recorded (ties: the higher release).
    static func newest(_ all: [(file: String, recording: OracleRecording)], release: String? = nil) -> (file: String, recording: OracleRecording)? {
        if let release, let same = all.first(where: { $0.recording.kernelRelease == release }) { return same }
        return all.max { ($0.recording.recorded, $0.recording.kernelRelease) < ($1.recording.recorded, $1.recording.kernelRelease) }
    }
}
