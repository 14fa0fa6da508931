import CGmemABI

/// `struct gmem_page_reference` (64 bytes, little-endian), the argument of gmemfs's own
/// `GMEM_PIN_PAGES` / `GMEM_UNPIN_PAGES`. Layout and numbers come from `include/gmem_abi.h`:
///
/// | bytes  | field         | rule                                   |
/// |--------|---------------|----------------------------------------|
/// | 0..7   | `offset`      | page-aligned, inside the file          |
/// | 8..15  | `size`        | page-aligned, non-zero                 |
/// | 16..23 | `flags`       | must be 0                              |
/// | 24..63 | `reserved[5]` | must be 0                              |
///
/// The type `'G'` differs from KVM's `0xAE` (no pin number can equal a KVM ioctl) and from the
/// VFS's generic file ioctl types, which the kernel answers before a file system is asked.
/// `_IOW`: the FUSE client copies the struct in and nothing back (an ioctl on a FUSE regular
/// file is "restricted": direction and size come from the number).
public struct GmemPageReference: Equatable, Sendable {
    /// `_IOW('G', 0x01, struct gmem_page_reference)` = 0x40404701.
    public static let pinNumber = UInt32(GMEM_PIN_PAGES)
    /// `_IOW('G', 0x02, struct gmem_page_reference)` = 0x40404702.
    public static let unpinNumber = UInt32(GMEM_UNPIN_PAGES)
    /// The uAPI names of ``pinNumber`` and ``unpinNumber``, for messages and logs.
    public static let pinName = "GMEM_PIN_PAGES", unpinName = "GMEM_UNPIN_PAGES"
    public static let byteCount = MemoryLayout<gmem_page_reference>.size
    public static let reservedCount = 5

    /// Byte offsets of the fields, as the C compiler lays out the header's struct.
    public enum Offset {
        public static let offset = MemoryLayout<gmem_page_reference>.offset(of: \.offset)!
        public static let size = MemoryLayout<gmem_page_reference>.offset(of: \.size)!
        public static let flags = MemoryLayout<gmem_page_reference>.offset(of: \.flags)!
        public static let reserved = MemoryLayout<gmem_page_reference>.offset(of: \.reserved)!
    }

    public var offset: UInt64
    public var size: UInt64
    public var flags: UInt64
    /// ``reservedCount`` words.
    public var reserved: [UInt64]

    public init(offset: UInt64, size: UInt64, flags: UInt64 = 0, reserved: [UInt64] = Array(repeating: 0, count: reservedCount)) {
        self.offset = offset; self.size = size; self.flags = flags; self.reserved = reserved
    }

    /// Decodes the struct; anything but exactly ``byteCount`` bytes is ``GmemABIError/wrongSize(expected:got:)``.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(GmemABIError) -> Self {
        guard bytes.count == byteCount else { throw .wrongSize(expected: byteCount, got: bytes.count) }
        func word(_ at: Int) -> UInt64 { UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
        return Self(offset: word(Offset.offset), size: word(Offset.size), flags: word(Offset.flags),
                    reserved: (0..<reservedCount).map { word(Offset.reserved + 8 * $0) })
    }

    /// The ``byteCount`` bytes of the struct. `reserved` beyond ``reservedCount`` words is
    /// dropped, missing words are 0.
    public func encode() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Self.byteCount)
        bytes.withUnsafeMutableBytes { raw in
            func put(_ v: UInt64, _ at: Int) { raw.storeBytes(of: v.littleEndian, toByteOffset: at, as: UInt64.self) }
            put(offset, Offset.offset); put(size, Offset.size); put(flags, Offset.flags)
            for (i, w) in reserved.prefix(Self.reservedCount).enumerated() { put(w, Offset.reserved + 8 * i) }
        }
        return bytes
    }
}
