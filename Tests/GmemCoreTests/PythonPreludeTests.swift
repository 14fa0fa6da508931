import Foundation
import GmemABI
import GmemTestSupport
import Testing

/// The Python interface constants (one copy: python/gmemfs_testing/abi.py, which the prelude
/// imports) are checked against GmemABI whenever the prelude is loaded.
@Suite struct PythonPreludeTests {
    @Test func thePackageConstantsMatchGmemABIAndThePreludeImportsThem() throws {
        let prelude = try Python.prelude()
        #expect(prelude.contains("from gmemfs_testing.abi import"))
        let text = try String(contentsOfFile: Python.constantsPath, encoding: .utf8)
        #expect(text.contains("XATTR_SET_ATTRIBUTES = '\(GmemXattr.setAttributes)'"))
        #expect(text.contains("GMEM_PIN_PAGES = 0x\(String(GmemPageReference.pinNumber, radix: 16, uppercase: false))"))
        // The prelude really gets them: a script sees GmemABI's value.
        let r = try Python.run("print(XATTR_STATS, GMEM_PIN_PAGES)")
        #expect(r.output == "\(GmemXattr.stats) \(GmemPageReference.pinNumber)\n", "\(r.stderr)")
    }

    @Test func aWrongOrMissingConstantIsRefused() throws {
        let text = try String(contentsOfFile: Python.constantsPath, encoding: .utf8)
        let renamed = text.replacingOccurrences(of: "'\(GmemXattr.setAttributes)'", with: "'user.gmem.set_attrs'")
        #expect(throws: HarnessError.self) { try Python.checkedConstants(renamed) }
        let wrongBits = text.replacingOccurrences(of: "FALLOC_FL_PUNCH_HOLE = 0x02", with: "FALLOC_FL_PUNCH_HOLE = 0x03")
        #expect(throws: HarnessError.self) { try Python.checkedConstants(wrongBits) }
        let missing = text.replacingOccurrences(of: "XATTR_STATS = ", with: "# XATTR_STATS = ")
        #expect(throws: HarnessError.self) { try Python.checkedConstants(missing) }
        let twice = text + "\nP = 4096\n"
        #expect(throws: HarnessError.self) { try Python.checkedConstants(twice) }
    }
}
