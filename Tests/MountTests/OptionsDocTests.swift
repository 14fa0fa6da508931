import Foundation
import GmemTestSupport
import Testing

/// docs/semantics.md ("The daemon", "Mount options") is the options reference: it lists exactly
/// the options of `gmemfs --help`, and exactly its `-o` words. (The man page is generated from
/// the same parser; Scripts/test-install.sh checks the installed one against --help.)
struct OptionsDocTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// `gmemfs --help` with wrapped lines joined: "OPTIONS:" rows keep their start.
    static func help() throws -> String {
        let r = try run([binDirectory() + "/gmemfs", "--help"])
        #expect(r.succeeded)
        return r.output
    }

    /// The discussion of every `--help` keeps its hard line breaks under 80 columns, so an
    /// 80-column terminal shows it as written (a longer line wraps into a ragged fragment).
    /// Lines with a value filled in (the event kinds) are left to the parser's wrapping.
    @Test func helpTextsFitEightyColumns() throws {
        let commands: [[String]] = [["gmemfs"]] + ["", "create", "convert", "map", "stats", "watch", "trace", "pin", "inject", "peek", "run", "tour"]
            .map { ["gmemctl"] + ($0.isEmpty ? [] : [$0]) }
        for command in commands {
            let r = try run(["/usr/bin/env", "COLUMNS=250", binDirectory() + "/" + command[0]] + command.dropFirst() + ["--help"])
            #expect(r.succeeded, "\(command)")
            // The discussion: between the OVERVIEW paragraph and USAGE.
            let lines = r.output.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            let discussion = lines.drop { !$0.isEmpty }.prefix { !$0.hasPrefix("USAGE:") }
            for line in discussion where line.count > 79 && !line.hasPrefix("Event kinds:") {
                Issue.record("\(command.joined(separator: " ")) --help: \(line.count) columns: \(line)")
            }
        }
    }

    /// The rows of the markdown table that follows `heading` in docs/semantics.md: cells, trimmed.
    static func table(after heading: String) throws -> [[String]] {
        let doc = try String(contentsOfFile: root + "/docs/semantics.md", encoding: .utf8)
        let lines = doc.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let start = try #require(lines.firstIndex(of: heading), "no '\(heading)' in docs/semantics.md")
        let rows = lines[start...].drop { !$0.hasPrefix("|") }.prefix { $0.hasPrefix("|") }.dropFirst(2)
        return rows.map { $0.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) } }
    }

    /// `-x`/`--xxx` spellings in backticks at the start of a cell: "`-f`, `--foreground`" → both.
    static func spellings(_ cell: String) -> Set<String> {
        Set(cell.split(separator: ",").compactMap { part -> String? in
            let p = part.trimmingCharacters(in: .whitespaces)
            guard p.hasPrefix("`-") else { return nil }
            return String(p.dropFirst().prefix { $0 != " " && $0 != "`" })
        })
    }

    @Test func everyOptionIsDocumentedAndEveryDocumentedOptionExists() throws {
        let help = try Self.help()
        let optionsSection = try #require(help.range(of: "\nOPTIONS:\n")).upperBound
        var inHelp: Set<String> = []
        for line in help[optionsSection...].split(separator: "\n") where line.hasPrefix("  -") {
            for token in line.split(separator: " ").prefix(3) {
                let t = token.trimmingCharacters(in: CharacterSet(charactersIn: ","))
                if t.hasPrefix("-") && !t.hasPrefix("<") { inHelp.insert(t) }
            }
        }
        let documented = try Self.table(after: "## The daemon").reduce(into: Set<String>()) { $0.formUnion(Self.spellings($1[0])) }
        #expect(!inHelp.isEmpty && inHelp.contains("--file"))
        #expect(inHelp.subtracting(documented).isEmpty, "in --help, not in docs/semantics.md: \(inHelp.subtracting(documented).sorted())")
        #expect(documented.subtracting(inHelp).isEmpty, "in docs/semantics.md, not in --help: \(documented.subtracting(inHelp).sorted())")
    }

    @Test func everyMountOptionWordIsDocumented() throws {
        let help = try Self.help().split(whereSeparator: \.isWhitespace).joined(separator: " ")
        let list = try #require(help.range(of: "gmemfs's: ").map { help[$0.upperBound...] })
        let words = list.prefix { $0 != "." }.components(separatedBy: ", ")
        // "max_memory=SIZE (--max-memory)" in --help; "`max_memory=SIZE` | `--max-memory SIZE`" in the doc.
        let fromHelp = Dictionary(uniqueKeysWithValues: words.map { w -> (String, String?) in
            let parts = w.split(separator: " ")
            return (String(parts[0]), parts.count > 1 ? String(parts[1].dropFirst().dropLast()) : nil)
        })
        let rows = try Self.table(after: "### Mount options (`-o`)")
        let fromDoc = Dictionary(uniqueKeysWithValues: rows.map { row -> (String, String?) in
            let word = row[0].trimmingCharacters(in: CharacterSet(charactersIn: "`"))
            let long = row[1].hasPrefix("`--") ? String(row[1].dropFirst().prefix { $0 != " " && $0 != "`" }) : nil
            return (word, long)
        })
        #expect(fromHelp.count >= 10)
        #expect(fromHelp == fromDoc, "--help: \(fromHelp.sorted { $0.key < $1.key })\ndoc: \(fromDoc.sorted { $0.key < $1.key })")
        // Every long option but -o's own and the help/version flags has a word.
        let longs = Set(fromHelp.values.compactMap { $0 })
        let documented = try Self.table(after: "## The daemon").reduce(into: Set<String>()) { $0.formUnion(Self.spellings($1[0])) }
        let withoutWord = documented.filter { $0.hasPrefix("--") && !longs.contains($0) }
        #expect(withoutWord == ["--help", "--version"], "options without an -o word: \(withoutWord.sorted())")
    }
}
