import Foundation
import GmemTestSupport
import Testing

/// The recording format of the kernel oracle (``OracleRecording``), on a hand-made fixture
/// (`Resources/oracle-fixture/format.tsv`, marked as one) and on synthetic oracle output. No
/// kernel and no mount: this runs everywhere. The fixture is never compared with gmemfs.
struct OracleRecordingTests {
    static let fixturePath = KernelOracleTests.sourceDirectory.appendingPathComponent("Resources/oracle-fixture/format.tsv").path

    @Test func fixtureParsesAndRoundTrips() throws {
        let text = try String(contentsOfFile: Self.fixturePath, encoding: .utf8)
        let r = try OracleRecording(text: text)
        #expect(r.isFixture)
        #expect(r.kernelRelease == "0.0.0-fixture" && r.recorded == "2026-12-06" && !r.inPlaceConversion)
        #expect(r.cases.map(\.key) == ["create create/size-0", "create create/size-page", "flags=mmap setattr/ftruncate-0",
                                       "flags=mmap setattr/ftruncate-0'", "flags=mmap convert/to-private-0+p"])
        #expect(r.outcomes["create create/size-page"] == "ok size=4096")
        // Written and read back: the same recording (comments are not kept, headers and order are).
        #expect(try OracleRecording(text: r.text) == r)
        #expect(try OracleRecording(text: r.text).text == r.text)
    }

    /// What `GMEM_ORACLE_RECORD=1` writes, from the oracle's own output: its `# ` lines become
    /// headers, cases keep their order, a repeated case gets a `'`.
    @Test func recordingFromOracleOutput() throws {
        let output = """
            # kernel-release: 6.18.0-test
            # machine: x86_64
            # guest-memfd-flags: 0x3
            # private-memory-vm: none
            # in-place-conversion: no
            create/size-0: EINVAL
            == flags=mmap
            setattr/ftruncate-0: EINVAL
            setattr/ftruncate-0: size-after=16384
            convert/to-private-0+p: ENOTTY error_offset=0x0

            """
        let r = try OracleRecording(oracleOutput: output, recorded: "2026-12-06")
        #expect(!r.isFixture && r.kernelRelease == "6.18.0-test" && !r.inPlaceConversion)
        #expect(r.header("private-memory-vm") == "none")
        #expect(r.cases.map(\.key) == ["create create/size-0", "flags=mmap setattr/ftruncate-0", "flags=mmap setattr/ftruncate-0'",
                                       "flags=mmap convert/to-private-0+p"])
        #expect(r.outcomes == KernelOracleTests.parse(output))
        #expect(try OracleRecording(text: r.text) == r)
        #expect(OracleRecording.fileName(release: "6.18.0-test+/x") == "kernel-6.18.0-test__x.tsv")
    }

    @Test(arguments: [
        ("no tab", "create create/size-0 EINVAL"),
        ("two tabs", "create create/size-0\tEINVAL\tmore"),
        ("not VARIANT GROUP/CASE", "create-size-0\tEINVAL"),
        ("empty outcome", "create create/size-0\t"),
        ("case twice", "create create/size-0\tEINVAL\ncreate create/size-0\tok"),
        ("unknown header", "# colour: blue\ncreate create/size-0\tEINVAL"),
        ("header twice", "# machine: x86_64\ncreate create/size-0\tEINVAL"),
    ])
    func malformedFilesAreRefused(why: String, body: String) throws {
        let head = "# kernel-release: 1\n# machine: x86_64\n# guest-memfd-flags: 0x3\n# in-place-conversion: no\n# recorded: 2026-12-06\n"
        #expect(throws: OracleRecording.FormatError.self, "\(why)") { try OracleRecording(text: head + body + "\n") }
    }

    @Test func missingHeadersAndEmptyFilesAreRefused() throws {
        let full = ["# kernel-release: 1", "# machine: x86_64", "# guest-memfd-flags: 0x3", "# in-place-conversion: no", "# recorded: 2026-12-06"]
        for dropped in full.indices {
            var lines = full
            lines.remove(at: dropped)
            #expect(throws: OracleRecording.FormatError.self) { try OracleRecording(text: (lines + ["a b/c\tok"]).joined(separator: "\n")) }
        }
        #expect(throws: OracleRecording.FormatError.self) { try OracleRecording(text: full.joined(separator: "\n")) }
    }

    /// The newest recording is the one of the live kernel's release if there is one, else the
    /// most recently recorded; a fixture in the recordings directory is an error.
    @Test func newestRecordingAndTheRecordingsDirectory() throws {
        func recording(_ release: String, _ date: String) -> (file: String, recording: OracleRecording) {
            (release, OracleRecording(headers: [("kernel-release", release), ("recorded", date)], cases: [("a b/c", "ok")]))
        }
        let all = [recording("6.18", "2026-12-01"), recording("7.4", "2026-12-05"), recording("7.3", "2026-12-03")]
        #expect(OracleRecording.newest(all)?.file == "7.4")
        #expect(OracleRecording.newest(all, release: "6.18")?.file == "6.18")
        #expect(OracleRecording.newest(all, release: "9.9")?.file == "7.4")
        #expect(OracleRecording.newest([]) == nil)

        let dir = try makeTemporaryDirectory("oracle-recordings")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(try OracleRecording.all(in: dir).isEmpty)
        try FileManager.default.copyItem(atPath: Self.fixturePath, toPath: dir + "/kernel-fixture.tsv")
        #expect(throws: HarnessError.self) { try OracleRecording.all(in: dir) }
        // The committed recordings all parse, and none is a fixture.
        _ = try OracleRecording.all(in: KernelOracleTests.recordingsDirectory)
    }
}
