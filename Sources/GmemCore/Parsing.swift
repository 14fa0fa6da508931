import GmemABI

// Parsers for the text and binary requests users send (xattr values, the ioctl struct,
// command-line sizes). Every parser is total: any input yields a value or a
// `GmemError.invalidArgument`; no input can trap.

/// Parses a number in the interface's grammar (``GmemNumber``); failures are EINVAL.
public func parseNumber<S: StringProtocol>(_ text: S) throws(GmemError) -> UInt64 {
    do { return try GmemNumber.parse(text) } catch { throw GmemError(error) }
}

/// Splits an xattr value into whitespace-separated fields. A trailing NUL (as some tools send)
/// is ignored; any other control byte or invalid UTF-8 is an error.
func fields(_ value: [UInt8]) throws(GmemError) -> [Substring] {
    var bytes = value[...]
    while let last = bytes.last, last == 0 { bytes = bytes.dropLast() }
    guard let text = String(validating: bytes, as: UTF8.self) else { throw .invalidArgument("value is not UTF-8 text") }
    for u in text.unicodeScalars where u.value < 0x20 && !" \t\n\r".unicodeScalars.contains(u) {
        throw .invalidArgument("value contains control characters")
    }
    return text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" })
}

extension ConversionRequest {
    /// Parses the `user.gmem.set_attributes` value `OFFSET SIZE ATTRIBUTES` (exactly three fields;
    /// ATTRIBUTES is `private`, `shared` or a number).
    public init(xattrValue value: [UInt8], fileSize: UInt64) throws(GmemError) {
        let f = try fields(value)
        guard f.count == 3 else { throw .invalidArgument("expected 'OFFSET SIZE ATTRIBUTES', got \(f.count) fields") }
        let attributes: UInt64
        if let name = GmemAttributeName(rawValue: f[2].lowercased()) {
            attributes = name.bits
        } else {
            attributes = try parseNumber(f[2])
        }
        try self.init(offset: try parseNumber(f[0]), size: try parseNumber(f[1]), attributes: attributes, fileSize: fileSize)
    }
}

extension KVMMemoryAttributes2 {
    /// Decodes the little-endian struct (``KVMMemoryAttributes2/decode(_:)``); anything but
    /// exactly 128 bytes is EINVAL.
    public init(bytes: UnsafeRawBufferPointer) throws(GmemError) {
        do { self = try Self.decode(bytes) } catch { throw GmemError(error) }
    }
}

extension GmemPageReference {
    /// Decodes the little-endian struct (``GmemPageReference/decode(_:)``); anything but
    /// exactly 64 bytes is EINVAL.
    public init(bytes: UnsafeRawBufferPointer) throws(GmemError) {
        do { self = try Self.decode(bytes) } catch { throw GmemError(error) }
    }
}

extension CreateRequest {
    /// FLAGS in ``GmemCreateFlag/parseList(_:)``'s grammar; unknown names or bits are EINVAL.
    public static func parseFlags<S: StringProtocol>(_ text: S) throws(GmemError) -> GmemFlags {
        do { return GmemFlags(try GmemCreateFlag.parseList(text)) } catch { throw GmemError(error) }
    }

    public init(xattrValue value: [UInt8]) throws(GmemError) {
        let f = try fields(value)
        guard f.count == 2 || f.count == 3 else { throw .invalidArgument("expected 'NAME SIZE [FLAGS]'") }
        try self.init(name: String(f[0]), size: try parseNumber(f[1]), flags: f.count == 3 ? try Self.parseFlags(f[2]) : [])
    }
}
