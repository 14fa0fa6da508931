import Foundation
import GmemTestSupport
import Testing

/// `gmemctl stats|map|watch --json`, parsed by Python's json module (as a script would).
@Suite(.serialized, .enabled(if: FUSE.available))
struct GmemctlJSONTests {
    /// Runs `gmemctl args` and checks its stdout with `check`, a Python expression over `docs`
    /// (the list of JSON documents, one per line) that must be true; prints the documents otherwise.
    static func check(_ args: [String], _ check: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let r = try GmemctlTests.ctl(args)
        #expect(r.succeeded, "\(r)", sourceLocation: sourceLocation)
        let script = """
            import json, sys
            docs = [json.loads(line) for line in sys.stdin.read().splitlines()]
            ok = \(check)
            print("ok" if ok else json.dumps(docs))
            """
        let py = try run(["python3", "-c", script], input: r.stdout)
        #expect(py.succeeded && py.output == "ok\n", "\(args): \(py.output) \(py.stderr)", sourceLocation: sourceLocation)
    }

    @Test func mapRangesAreObjectsWithNumericOffsets() throws {
        let m = try GmemMount(["--file", "f:64K:mmap"])
        defer { m.unmount() }
        #expect(throws: Never.self) { try convert(m.file("f"), "4096 8192 shared") }
        try Self.check(["map", "--json", m.file("f")], """
            docs == [{"path": "\(m.file("f"))", "size": 65536, "shared_bytes": 8192, "private_bytes": 57344,
                      "ranges": [{"offset": 0, "size": 4096, "end": 4096, "attribute": "private"},
                                 {"offset": 4096, "size": 8192, "end": 12288, "attribute": "shared"},
                                 {"offset": 12288, "size": 53248, "end": 65536, "attribute": "private"}]}]
            """)
        // The ranges are the xattr map, line for line.
        let lines = attributes(m.file("f")).split(separator: "\n").map { line -> String in
            let p = line.split(separator: " "), b = p[0].split(separator: "-")
            return "(\(UInt64(b[0], radix: 16)!), \(UInt64(b[1], radix: 16)!), '\(p[1])')"
        }
        try Self.check(["map", "--json", m.file("f")],
                       "[(r['offset'], r['end'], r['attribute']) for r in docs[0]['ranges']] == [\(lines.joined(separator: ", "))]")
    }

    @Test func statsOfAFileAndOfTheMount() throws {
        let m = try GmemMount(["--file", "f:64K:mmap,init-shared", "--file", "g:8K", "--max-memory", "1M"])
        defer { m.unmount() }
        #expect((try? write(m.file("f"), [1], at: 0)) == 1)
        try Self.check(["stats", "--json", m.file("f")], """
            docs[0]["stats"]["size"] == 65536 and docs[0]["stats"]["allocated_bytes"] == 4096 \
            and docs[0]["stats"]["flags"] == "mmap init-shared" and "files" not in docs[0]
            """)
        try Self.check(["stats", "--json", m.path], """
            docs[0]["stats"]["max_memory"] == 1048576 and docs[0]["stats"]["files"] == 2 \
            and docs[0]["files"] == [
                {"name": "f", "size": 65536, "shared_bytes": 65536, "private_bytes": 0, "ranges": 1},
                {"name": "g", "size": 8192, "shared_bytes": 0, "private_bytes": 8192, "ranges": 1}]
            """)
        // Every counter of user.gmem.stats is there, numbers as numbers.
        let keys = stats(m.path).pairs.map(\.key).sorted()
        try Self.check(["stats", "--json", m.path], "sorted(docs[0]['stats']) == \(keys)")
    }

    @Test func watchPrintsOneObjectPerChange() throws {
        let m = try GmemMount(["--file", "f:16K:mmap"])
        defer { m.unmount() }
        let f = m.file("f")
        // Converts a page while watch runs; watch stops after the second map.
        let converter = Thread {
            usleep(300_000)
            try? convert(f, "0 4096 shared")
        }
        converter.start()
        try Self.check(["watch", "--json", "--interval", "0.05", "--count", "2", f], """
            len(docs) == 2 and docs[0]["ranges"] == [{"offset": 0, "size": 16384, "end": 16384, "attribute": "private"}] \
            and docs[1]["ranges"][0] == {"offset": 0, "size": 4096, "end": 4096, "attribute": "shared"} \
            and docs[1]["shared_bytes"] == 4096
            """)
    }

    /// --json changes only the output: bad input is still exit 64 with one line on stderr.
    @Test func badInputStillExits64() throws {
        let m = try GmemMount(["--file", "f:16K"])
        defer { m.unmount() }
        let r = try GmemctlTests.ctl(["map", "--json", m.path + "/missing"])
        #expect(r.status == 1 && r.output.isEmpty && r.stderr.hasPrefix("gmemctl: "), "\(r)")
        let bad = try GmemctlTests.ctl(["watch", "--json", "--interval", "0", m.file("f")])
        #expect(bad.status == 64 && bad.output.isEmpty, "\(bad)")
    }
}
