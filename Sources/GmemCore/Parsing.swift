/// Parsers for the text and binary requests users send (xattr values, the ioctl struct,
/// command-line sizes). Every parser is total: any input yields a value or a
/// ``GmemError/invalidArgument(_:)``; no input can trap.

/// Parses an unsigned number: decimal or `0x` hex, with an optional binary suffix
/// `K`, `M`, `G` or `T` (case-insensitive, optionally followed by `iB` or `B`).
/// Overflow past `UInt64.max` is an error, not a wrap.
public func parseNumber<S: StringProtocol>(_ text: S) throws(GmemError) -> UInt64 {
    let bytes = Array(text.utf8)
    var i = 0
    var radix: UInt64 = 10
    if bytes.count >= 2, bytes[0] == UInt8(ascii: "0"), bytes[1] | 0x20 == UInt8(ascii: "x") { radix = 16; i = 2 }
    var value: UInt64 = 0
    let digitsStart = i
    while i < bytes.count {
        let ch = bytes[i]
        let digit: UInt64
        switch ch {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt64(ch - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f") where radix == 16: digit = UInt64(ch - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F") where radix == 16: digit = UInt64(ch - UInt8(ascii: "A") + 10)
        default: digit = UInt64.max
        }
        if digit == UInt64.max { break }
        let (m, o1) = value.multipliedReportingOverflow(by: radix)
        let (a, o2) = m.addingReportingOverflow(digit)
        guard !o1, !o2 else { throw .invalidArgument("'\(text)' overflows 64 bits") }
        value = a
        i += 1
    }
    guard i > digitsStart else { throw .invalidArgument("'\(text)' is not a number") }
    let suffix = String(decoding: bytes[i...], as: UTF8.self).lowercased()
    let shifts: [String: UInt64] = ["": 0, "k": 10, "m": 20, "g": 30, "t": 40]
    var unit = suffix
    if unit.hasSuffix("ib") { unit.removeLast(2) } else if unit.hasSuffix("b"), unit.count == 2 { unit.removeLast() }
    guard let shift = shifts[unit], suffix.isEmpty || !unit.isEmpty else { throw .invalidArgument("'\(text)' is not a number") }
    guard value <= UInt64.max >> shift else { throw .invalidArgument("'\(text)' overflows 64 bits") }
    return value << shift
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
        switch f[2].lowercased() {
        case "private": attributes = MemoryAttributes.private.rawValue
        case "shared": attributes = 0
        default: attributes = try parseNumber(f[2])
        }
        try self.init(offset: try parseNumber(f[0]), size: try parseNumber(f[1]), attributes: attributes, fileSize: fileSize)
    }
}

/// `struct kvm_memory_attributes2` (128 bytes), the argument of `KVM_SET_MEMORY_ATTRIBUTES2`.
public struct KVMMemoryAttributes2: Equatable, Sendable {
    /// `_IOWR(KVMIO=0xAE, 0xd2, struct kvm_memory_attributes2)`.
    public static let ioctlNumber: UInt32 = 0xC080_AED2
    public static let byteCount = 128

    public var offset: UInt64
    public var size: UInt64
    public var attributes: UInt64
    public var flags: UInt64
    public var errorOffset: UInt64
    public var reserved: [UInt64]   // 11 words

    /// Decodes the little-endian struct; anything but exactly 128 bytes is EINVAL.
    public init(bytes: UnsafeRawBufferPointer) throws(GmemError) {
        guard bytes.count == Self.byteCount else { throw .invalidArgument("argument is \(bytes.count) bytes, expected 128") }
        func word(_ i: Int) -> UInt64 { UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)) }
        offset = word(0); size = word(1); attributes = word(2); flags = word(3); errorOffset = word(4)
        reserved = (5..<16).map(word)
    }

    /// Validates as `kvm_gmem_set_attributes` does: flags ≠ 0 or any reserved word ≠ 0 → EINVAL,
    /// then the checks of ``ConversionRequest``.
    public func request(fileSize: UInt64) throws(GmemError) -> ConversionRequest {
        guard flags == 0 else { throw .invalidArgument("flags must be 0") }
        guard reserved.allSatisfy({ $0 == 0 }) else { throw .invalidArgument("reserved words must be 0") }
        return try ConversionRequest(offset: offset, size: size, attributes: attributes, fileSize: fileSize)
    }
}

extension KVMMemoryAttributes2 {
    /// The little-endian struct, as copied back to the caller on a failure with `error_offset`.
    public var bytes: [UInt8] {
        let words = [offset, size, attributes, flags, errorOffset] + reserved
        return words.flatMap { w in (0..<8).map { UInt8(truncatingIfNeeded: w >> ($0 * 8)) } }
    }
}

/// `struct gmem_page_reference` (64 bytes), the argument of gmemfs's own pin ioctls:
///
/// ```c
/// struct gmem_page_reference {
///         __u64 offset;        /* byte offset into the file, multiple of 4096 */
///         __u64 size;          /* bytes, non-zero multiple of 4096 */
///         __u64 flags;         /* must be 0 */
///         __u64 reserved[5];   /* must be 0 */
/// };
/// #define GMEM_IOCTL_TYPE  'G'   /* 0x47 */
/// #define GMEM_PIN_PAGES   _IOW('G', 0x01, struct gmem_page_reference)   /* 0x40404701 */
/// #define GMEM_UNPIN_PAGES _IOW('G', 0x02, struct gmem_page_reference)   /* 0x40404702 */
/// ```
///
/// The type `'G'` differs from KVM's `0xAE`, so no pin number can equal a KVM ioctl, and from
/// the types of the VFS's generic file ioctls (`'f'`, `'X'`, `0x94`, `'T'`), which the kernel
/// answers itself before a file system is asked. `_IOW`: the kernel's FUSE client copies the 64
/// bytes in and nothing back (an ioctl on a FUSE regular file is "restricted": direction and size
/// come from the number).
public struct GmemPageReference: Equatable, Sendable {
    public static let pinNumber: UInt32 = 0x4040_4701
    public static let unpinNumber: UInt32 = 0x4040_4702
    public static let byteCount = 64

    public var offset: UInt64
    public var size: UInt64
    public var flags: UInt64
    public var reserved: [UInt64]   // 5 words

    public init(offset: UInt64, size: UInt64, flags: UInt64 = 0, reserved: [UInt64] = Array(repeating: 0, count: 5)) {
        self.offset = offset; self.size = size; self.flags = flags; self.reserved = reserved
    }

    /// Decodes the little-endian struct; anything but exactly 64 bytes is EINVAL.
    public init(bytes: UnsafeRawBufferPointer) throws(GmemError) {
        guard bytes.count == Self.byteCount else { throw .invalidArgument("argument is \(bytes.count) bytes, expected 64") }
        func word(_ i: Int) -> UInt64 { UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)) }
        offset = word(0); size = word(1); flags = word(2)
        reserved = (3..<8).map(word)
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

    /// Names are 1-255 bytes of UTF-8 without `/`, NUL or control characters, and may not
    /// start with `.` (that namespace is the file system's: `.guest`).
    public static func validate(name: String) throws(GmemError) {
        guard !name.isEmpty, name.utf8.count <= 255 else { throw .invalidArgument("name must be 1-255 bytes") }
        guard !name.hasPrefix(".") else { throw .invalidArgument("names starting with '.' are reserved") }
        guard !name.unicodeScalars.contains(where: { $0 == "/" || $0.value < 0x20 || (0x7f...0x9f).contains($0.value) }) else {
            throw .invalidArgument("name contains '/' or control characters")
        }
    }

    /// SIZE must be a positive multiple of 4096 that fits a signed 64-bit file size
    /// (KVM_CREATE_GUEST_MEMFD's rule: `size <= 0 || !PAGE_ALIGNED(size)` is EINVAL, with size a
    /// `loff_t`, so any size with bit 63 set is EINVAL too).
    public static func validate(size: UInt64) throws(GmemError) {
        guard size > 0, size % pageSize == 0 else { throw .invalidArgument("size must be a positive multiple of 4096") }
        guard size <= UInt64(Int64.max) else { throw .invalidArgument("size must be below 2^63") }
    }

    /// FLAGS: a comma list of `mmap`, `init-shared` (also `init_shared`), or a number
    /// (bit 0 mmap, bit 1 init-shared). Unknown names or bits are EINVAL.
    public static func parseFlags<S: StringProtocol>(_ text: S) throws(GmemError) -> GmemFlags {
        if let first = text.first, first.isNumber {
            let bits = try parseNumber(text)
            guard bits & ~GmemFlags.all.rawValue == 0 else { throw .invalidArgument("unknown flag bits in \(text)") }
            return GmemFlags(rawValue: bits)
        }
        var flags: GmemFlags = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let key = String(part).replacing("_", with: "-")
            guard let f = GmemFlags.names.first(where: { $0.0 == key }) else { throw .invalidArgument("unknown flag '\(part)'") }
            flags.insert(f.1)
        }
        return flags
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
