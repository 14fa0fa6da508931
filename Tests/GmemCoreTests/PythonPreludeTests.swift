import Foundation
import GmemABI
import GmemTestSupport
import Testing

/// The Python prelude's interface constants are checked against GmemABI when it is loaded.
@Suite struct PythonPreludeTests {
    @Test func thePreludeFileMatchesGmemABI() throws {
        let text = try Python.prelude()
        #expect(text.contains("XATTR_SET_ATTRIBUTES = '\(GmemXattr.setAttributes)'"))
    }

    /// The installable package's constants (python/gmemfs_testing/abi.py) are GmemABI's too.
    @Test func thePackageConstantsMatchGmemABI() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        let text = try String(contentsOfFile: root + "/python/gmemfs_testing/abi.py", encoding: .utf8)
        _ = try Python.checkedPrelude(text)
        #expect(text.contains("GMEM_PIN_PAGES = 0x\(String(GmemPageReference.pinNumber, radix: 16, uppercase: false))"))
    }

    @Test func aWrongOrMissingConstantIsRefused() throws {
        let text = try Python.prelude()
        let renamed = text.replacingOccurrences(of: "'\(GmemXattr.setAttributes)'", with: "'user.gmem.set_attrs'")
        #expect(throws: HarnessError.self) { try Python.checkedPrelude(renamed) }
        let wrongBits = text.replacingOccurrences(of: "FALLOC_FL_PUNCH_HOLE = 0x02", with: "FALLOC_FL_PUNCH_HOLE = 0x03")
        #expect(throws: HarnessError.self) { try Python.checkedPrelude(wrongBits) }
        let missing = text.replacingOccurrences(of: "XATTR_STATS = ", with: "# XATTR_STATS = ")
        #expect(throws: HarnessError.self) { try Python.checkedPrelude(missing) }
        let twice = text + "\nP = 4096\n"
        #expect(throws: HarnessError.self) { try Python.checkedPrelude(twice) }
    }
}
