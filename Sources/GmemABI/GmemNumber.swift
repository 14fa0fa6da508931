/// The number grammar of every size and offset the interface takes (xattr values, gmemfs
/// `--file`/`--max-memory`, gmemctl arguments):
///
/// - digits: decimal `[0-9]+`, or `0x`/`0X` then `[0-9a-fA-F]+` (taken greedily);
/// - then an optional binary suffix `K`, `M`, `G` or `T` (×2^10 … ×2^40, case-insensitive),
///   optionally followed by `iB` or `B` (`4K`, `4KB`, `4KiB`);
/// - the value must fit in 64 bits: past `UInt64.max` is an error, never a wrap.
public enum GmemNumber {
    /// Parses `text`, validating its shape before any arithmetic: a malformed text is
    /// ``GmemABIError/notANumber(_:)`` whatever its magnitude, a well-formed one too large is
    /// ``GmemABIError/overflow(_:)``.
    public static func parse<S: StringProtocol>(_ text: S) throws(GmemABIError) -> UInt64 {
        let bytes = Array(text.utf8)
        var i = 0
        var radix: UInt64 = 10
        if bytes.count >= 2, bytes[0] == UInt8(ascii: "0"), bytes[1] | 0x20 == UInt8(ascii: "x") { radix = 16; i = 2 }
        let digitsStart = i
        while i < bytes.count, digit(bytes[i], radix: radix) != nil { i += 1 }
        let digits = bytes[digitsStart..<i]
        guard !digits.isEmpty, let shift = suffixShift(bytes[i...]) else { throw .notANumber(String(text)) }
        var value: UInt64 = 0
        for ch in digits {
            let (m, o1) = value.multipliedReportingOverflow(by: radix)
            let (a, o2) = m.addingReportingOverflow(digit(ch, radix: radix) ?? 0)
            guard !o1, !o2 else { throw .overflow(String(text)) }
            value = a
        }
        guard value <= UInt64.max >> shift else { throw .overflow(String(text)) }
        return value << shift
    }

    /// `0x` and lowercase hex, the form the daemon prints offsets in (`0x1000`).
    public static func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }

    private static func digit(_ ch: UInt8, radix: UInt64) -> UInt64? {
        switch ch {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt64(ch - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f") where radix == 16: UInt64(ch - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F") where radix == 16: UInt64(ch - UInt8(ascii: "A") + 10)
        default: nil
        }
    }

    /// The shift of a suffix (`""` → 0, `k`/`kb`/`kib` → 10, …), nil when it is none of them.
    private static func suffixShift(_ suffix: ArraySlice<UInt8>) -> UInt64? {
        var unit = Array(suffix.map { $0 | 0x20 })   // ASCII lowercase; other bytes fail below
        if unit.count == 3, unit[1] == UInt8(ascii: "i"), unit[2] == UInt8(ascii: "b") { unit.removeLast(2) }
        else if unit.count == 2, unit[1] == UInt8(ascii: "b") { unit.removeLast() }
        switch unit {
        case []: return suffix.isEmpty ? 0 : nil
        case [UInt8(ascii: "k")]: return 10
        case [UInt8(ascii: "m")]: return 20
        case [UInt8(ascii: "g")]: return 30
        case [UInt8(ascii: "t")]: return 40
        default: return nil
        }
    }
}
