/// Command-line input, validated before anything is sent: each rule the daemon enforces is
/// checked here first, so a bad value gets its reason (``UsageFailure``, exit status 64)
/// instead of a bare EINVAL. Arithmetic on user input is overflow-checked.
enum Input {
    static let pageSize: UInt64 = 4096

    /// A number in the daemon's grammar (``Units/parse(_:)``), or a one-line reason.
    static func number(_ text: String, _ what: String) throws -> UInt64 {
        if let v = Units.parse(text) { return v }
        if text.hasPrefix("-") { throw UsageFailure("\(what) '\(text)' is negative; offsets and sizes are ≥ 0") }
        if wellFormed(text) { throw UsageFailure("\(what) '\(text)' does not fit in 64 bits") }
        throw UsageFailure("\(what) '\(text)' is not a number (decimal or 0x hex, optional K, M, G or T suffix)")
    }

    /// Whether `text` follows the number grammar, whatever its magnitude: a failed parse of a
    /// well-formed number is an overflow.
    static func wellFormed(_ text: String) -> Bool {
        var rest = Substring(text.lowercased())
        var isDigit: (Character) -> Bool = { $0.isASCII && $0.isNumber }
        if rest.hasPrefix("0x") { rest = rest.dropFirst(2); isDigit = { $0.isHexDigit } }
        let digits = rest.prefix(while: isDigit)
        guard !digits.isEmpty else { return false }
        return ["", "k", "m", "g", "t", "kb", "mb", "gb", "tb", "kib", "mib", "gib", "tib"].contains(String(rest.dropFirst(digits.count)))
    }

    /// A page-aligned byte offset.
    static func offset(_ text: String) throws -> UInt64 {
        let v = try number(text, "offset")
        guard v % pageSize == 0 else { throw UsageFailure("offset \(text) is not a multiple of 4096 (pages are 4 KiB)") }
        return v
    }

    /// A positive page-aligned byte count.
    static func size(_ text: String) throws -> UInt64 {
        let v = try number(text, "size")
        guard v != 0 else { throw UsageFailure("size must not be 0") }
        guard v % pageSize == 0 else { throw UsageFailure("size \(text) is not a multiple of 4096 (pages are 4 KiB)") }
        return v
    }

    /// `[offset, offset + size)` must lie inside a file of `fileSize` bytes.
    static func range(offset: UInt64, size: UInt64, fileSize: UInt64, file: String) throws -> UInt64 {
        let (end, overflow) = offset.addingReportingOverflow(size)
        guard !overflow, offset < fileSize, end <= fileSize else {
            let shownEnd = overflow ? "beyond 2^64" : Units.hex(end)
            throw UsageFailure("range [\(Units.hex(offset)), \(shownEnd)) ends past the end of \(file) (\(Units.human(fileSize)), \(Units.hex(fileSize)))")
        }
        return end
    }

    /// A file name as `user.gmem.create` accepts it: 1-255 bytes, no `/`, whitespace or control
    /// characters, no leading `.` (the file system's own namespace, `.guest`).
    static func fileName(_ name: String) throws {
        guard !name.isEmpty, name.utf8.count <= 255 else { throw UsageFailure("name must be 1 to 255 bytes") }
        guard !name.hasPrefix(".") else { throw UsageFailure("name '\(name)' starts with '.': such names are reserved (.guest)") }
        guard !name.unicodeScalars.contains(where: { $0 == "/" || $0.value <= 0x20 || (0x7f...0x9f).contains($0.value) }) else {
            throw UsageFailure("name '\(name)' contains '/', a space or a control character")
        }
    }

    static let flagNames = ["mmap", "init-shared"]

    /// FLAGS for `user.gmem.create`: a comma list of `mmap`, `init-shared` (case-insensitive,
    /// `_` for `-`) or a number (bit 0 mmap, bit 1 init-shared). Returns the canonical list.
    static func flags(_ text: String) throws -> [String] {
        if text.first?.isNumber == true {
            let bits = try number(text, "flags")
            guard bits & ~3 == 0 else { throw UsageFailure("flags \(text) has unknown bits (bit 0 mmap, bit 1 init-shared)") }
            return flagNames.enumerated().filter { bits & (1 << $0.offset) != 0 }.map(\.element)
        }
        var result: [String] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let key = part.lowercased().replacing("_", with: "-")
            guard flagNames.contains(key) else {
                throw UsageFailure("unknown flag '\(part)' (known: \(flagNames.joined(separator: ", ")))")
            }
            if !result.contains(key) { result.append(key) }
        }
        return result
    }

    /// The first argument before `--` that reads as a negative number (`-4K`, `-0x1000`, `-1`).
    /// ArgumentParser would take it for an option and report a missing argument; every number
    /// gmemctl takes is ≥ 0, so it is rejected with that reason instead.
    static func negativeNumber(in arguments: [String]) -> String? {
        for a in arguments {
            if a == "--" { return nil }
            if a.count >= 2, a.first == "-", a.dropFirst().first.map({ $0.isNumber || $0 == "." }) == true { return a }
            // `--count=-5`
            if a.hasPrefix("--"), let eq = a.firstIndex(of: "="), a[a.index(after: eq)...].hasPrefix("-") { return a }
        }
        return nil
    }
}
