import GmemABI

/// Command-line input, validated before anything is sent: each rule the daemon enforces is
/// checked here first, so a bad value gets its reason (``UsageFailure``, exit status 64)
/// instead of a bare EINVAL. Arithmetic on user input is overflow-checked.
enum Input {
    static let pageSize = gmemPageSize

    /// A number in the daemon's grammar (``GmemNumber``), or a one-line reason.
    static func number(_ text: String, _ what: String) throws -> UInt64 {
        do {
            return try GmemNumber.parse(text)
        } catch .overflow {
            throw UsageFailure("\(what) '\(text)' does not fit in 64 bits")
        } catch {
            if text.hasPrefix("-") { throw UsageFailure("\(what) '\(text)' is negative; offsets and sizes are ≥ 0") }
            throw UsageFailure("\(what) '\(text)' is not a number (decimal or 0x hex, optional K, M, G or T suffix)")
        }
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

    /// The OFFSET and SIZE arguments of a command on FILE (which must be a gmem file), checked
    /// before anything is sent: page-aligned, non-zero size, inside the file.
    /// Returns the offset, the size and the end (exclusive).
    static func fileRange(_ file: String, offset: String, size: String) throws -> (offset: UInt64, size: UInt64, end: UInt64) {
        let o = try Input.offset(offset)
        let s = try Input.size(size)
        let target = try GmemPath(file, .file)
        return (o, s, try range(offset: o, size: s, fileSize: target.size, file: file))
    }

    /// A file name as `user.gmem.create` accepts it (``GmemFileName``).
    static func fileName(_ name: String) throws {
        switch GmemFileName.problem(name) {
        case nil: return
        case .length?: throw UsageFailure("name must be 1 to \(GmemFileName.maxBytes) bytes")
        case .reservedPrefix?: throw UsageFailure("name '\(name)' starts with '.': such names are reserved (.guest)")
        case .forbiddenCharacter?: throw UsageFailure("name '\(name)' contains '/', a space or a control character")
        }
    }

    /// FLAGS for `user.gmem.create` (``GmemCreateFlag/parseList(_:)``'s grammar), as the
    /// canonical list.
    static func flags(_ text: String) throws -> [GmemCreateFlag] {
        do { return try GmemCreateFlag.parseList(text) } catch { throw UsageFailure(error.description) }
    }

    /// The first argument before `--` that reads as a negative number (`-4K`, `-0x1000`, `-1`).
    /// ArgumentParser would take it for an option and report a missing argument; every number
    /// gmemctl takes is ≥ 0, so it is rejected with that reason instead.
    /// With the option it was given to (`--interval -1`, `--count=-5`), or nil for an argument.
    static func negativeNumber(in arguments: [String]) -> (value: String, option: String?)? {
        for (i, a) in arguments.enumerated() {
            if a == "--" { return nil }
            if a.count >= 2, a.first == "-", a.dropFirst().first.map({ $0.isNumber || $0 == "." }) == true {
                let previous = i > 0 ? arguments[i - 1] : ""
                return (a, previous.hasPrefix("--") && !previous.contains("=") ? previous : nil)
            }
            // `--count=-5`
            if a.hasPrefix("--"), let eq = a.firstIndex(of: "="), a[a.index(after: eq)...].hasPrefix("-") {
                return (String(a[a.index(after: eq)...]), String(a[..<eq]))
            }
        }
        return nil
    }
}
