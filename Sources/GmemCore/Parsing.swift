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

/// A validated conversion request: page-aligned, non-empty, inside the file.
public struct ConversionRequest: Equatable, Sendable {
    public let offset: UInt64
    public let size: UInt64
    public let attributes: MemoryAttributes

    /// The pages the request covers, inclusive.
    public var pages: ClosedRange<UInt64> { (offset >> pageShift)...((offset + size - 1) >> pageShift) }

    /// Validates in the kernel's order (`kvm_gmem_set_attributes`): unknown attribute bits,
    /// size 0 or `offset + size` overflow, misalignment, then bounds (`offset >= fileSize` or
    /// `offset + size > fileSize`). All failures are EINVAL.
    public init(offset: UInt64, size: UInt64, attributes: UInt64, fileSize: UInt64) throws(GmemError) {
        guard attributes & ~MemoryAttributes.supported.rawValue == 0 else {
            throw .invalidArgument("0x" + String(attributes, radix: 16) + " has unknown attribute bits")
        }
        let (end, overflow) = offset.addingReportingOverflow(size)
        guard size != 0, !overflow else { throw .invalidArgument("size is 0 or offset + size overflows") }
        guard offset % pageSize == 0, size % pageSize == 0 else { throw .invalidArgument("offset and size must be multiples of 4096") }
        guard offset < fileSize, end <= fileSize else { throw .invalidArgument("range ends past the end of the file") }
        self.offset = offset; self.size = size; self.attributes = MemoryAttributes(rawValue: attributes)
    }

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

    /// Validates as `kvm_gmem_set_attributes` does: flags ≠ 0 or any reserved word ≠ 0 → EINVAL,
    /// then the checks of ``ConversionRequest``.
    public func request(fileSize: UInt64) throws(GmemError) -> ConversionRequest {
        guard flags == 0 else { throw .invalidArgument("flags must be 0") }
        guard reserved.allSatisfy({ $0 == 0 }) else { throw .invalidArgument("reserved words must be 0") }
        return try ConversionRequest(offset: offset, size: size, attributes: attributes, fileSize: fileSize)
    }
}

extension GmemPageReference {
    /// Decodes the little-endian struct (``GmemPageReference/decode(_:)``); anything but
    /// exactly 64 bytes is EINVAL.
    public init(bytes: UnsafeRawBufferPointer) throws(GmemError) {
        do { self = try Self.decode(bytes) } catch { throw GmemError(error) }
    }

    /// Validates: flags ≠ 0 or a reserved word ≠ 0, then size 0, overflow, misalignment or a range
    /// not inside the file (the checks of ``ConversionRequest``) → EINVAL. Returns the pages.
    public func pages(fileSize: UInt64) throws(GmemError) -> ClosedRange<UInt64> {
        guard flags == 0 else { throw .invalidArgument("flags must be 0") }
        guard reserved.allSatisfy({ $0 == 0 }) else { throw .invalidArgument("reserved words must be 0") }
        return try ConversionRequest(offset: offset, size: size, attributes: 0, fileSize: fileSize).pages
    }
}

/// A validated `user.gmem.create` request: `NAME SIZE [FLAGS]`.
public struct CreateRequest: Equatable, Sendable {
    public let name: String
    public let size: UInt64
    public let flags: GmemFlags

    /// ``GmemFileName``'s rule: 1-255 bytes of UTF-8 without `/`, spaces or control
    /// characters, not starting with `.` (that namespace is the file system's: `.guest`).
    public static func validate(name: String) throws(GmemError) {
        switch GmemFileName.problem(name) {
        case nil: return
        case .length?: throw .invalidArgument("name must be 1-\(GmemFileName.maxBytes) bytes")
        case .reservedPrefix?: throw .invalidArgument("names starting with '.' are reserved")
        case .forbiddenCharacter?: throw .invalidArgument("name contains '/', a space or a control character")
        }
    }

    /// SIZE must be a positive multiple of 4096 that fits a signed 64-bit file size
    /// (KVM_CREATE_GUEST_MEMFD's rule: `size <= 0 || !PAGE_ALIGNED(size)` is EINVAL, with size a
    /// `loff_t`, so any size with bit 63 set is EINVAL too).
    public static func validate(size: UInt64) throws(GmemError) {
        guard size > 0, size % pageSize == 0 else { throw .invalidArgument("size must be a positive multiple of 4096") }
        guard size <= UInt64(Int64.max) else { throw .invalidArgument("size must be below 2^63") }
    }

    /// FLAGS in ``GmemCreateFlag/parseList(_:)``'s grammar; unknown names or bits are EINVAL.
    public static func parseFlags<S: StringProtocol>(_ text: S) throws(GmemError) -> GmemFlags {
        do { return GmemFlags(try GmemCreateFlag.parseList(text)) } catch { throw GmemError(error) }
    }

    public init(name: String, size: UInt64, flags: GmemFlags) throws(GmemError) {
        try Self.validate(name: name)
        try Self.validate(size: size)
        self.name = name; self.size = size; self.flags = flags
    }

    public init(xattrValue value: [UInt8]) throws(GmemError) {
        let f = try fields(value)
        guard f.count == 2 || f.count == 3 else { throw .invalidArgument("expected 'NAME SIZE [FLAGS]'") }
        try self.init(name: String(f[0]), size: try parseNumber(f[1]), flags: f.count == 3 ? try Self.parseFlags(f[2]) : [])
    }
}
