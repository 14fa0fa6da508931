import CGmemABI

/// `struct kvm_memory_attributes2` (128 bytes, little-endian), the argument of
/// `KVM_SET_MEMORY_ATTRIBUTES2`. Layout and number come from `include/gmem_abi.h`:
///
/// | bytes  | field          | rule                                   |
/// |--------|----------------|----------------------------------------|
/// | 0..7   | `offset`       | page-aligned, inside the file          |
/// | 8..15  | `size`         | page-aligned, non-zero                 |
/// | 16..23 | `attributes`   | `KVM_MEMORY_ATTRIBUTE_PRIVATE` or 0    |
/// | 24..31 | `flags`        | must be 0                              |
/// | 32..39 | `error_offset` | out; written on failure only           |
/// | 40..127| `reserved[11]` | must be 0                              |
public struct KVMMemoryAttributes2: Equatable, Sendable {
    /// `_IOWR(KVMIO=0xAE, 0xd2, struct kvm_memory_attributes2)` = 0xC080AED2.
    public static let ioctlNumber = UInt32(KVM_SET_MEMORY_ATTRIBUTES2)
    /// The uAPI name of ``ioctlNumber``, for messages and logs.
    public static let ioctlName = "KVM_SET_MEMORY_ATTRIBUTES2"
    public static let byteCount = MemoryLayout<kvm_memory_attributes2>.size
    public static let reservedCount = 11

    /// Byte offsets of the fields, as the C compiler lays out the header's struct.
    public enum Offset {
        public static let offset = MemoryLayout<kvm_memory_attributes2>.offset(of: \.offset)!
        public static let size = MemoryLayout<kvm_memory_attributes2>.offset(of: \.size)!
        public static let attributes = MemoryLayout<kvm_memory_attributes2>.offset(of: \.attributes)!
        public static let flags = MemoryLayout<kvm_memory_attributes2>.offset(of: \.flags)!
        public static let errorOffset = MemoryLayout<kvm_memory_attributes2>.offset(of: \.error_offset)!
        public static let reserved = MemoryLayout<kvm_memory_attributes2>.offset(of: \.reserved)!
    }

    public var offset: UInt64
    public var size: UInt64
    public var attributes: UInt64
    public var flags: UInt64
    public var errorOffset: UInt64
    /// ``reservedCount`` words.
    public var reserved: [UInt64]

    public init(offset: UInt64, size: UInt64, attributes: UInt64, flags: UInt64 = 0, errorOffset: UInt64 = 0,
                reserved: [UInt64] = Array(repeating: 0, count: reservedCount)) {
        self.offset = offset; self.size = size; self.attributes = attributes
        self.flags = flags; self.errorOffset = errorOffset; self.reserved = reserved
    }

    /// Decodes the struct; anything but exactly ``byteCount`` bytes is ``GmemABIError/wrongSize(expected:got:)``.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(GmemABIError) -> Self {
        guard bytes.count == byteCount else { throw .wrongSize(expected: byteCount, got: bytes.count) }
        func word(_ at: Int) -> UInt64 { UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
        return Self(offset: word(Offset.offset), size: word(Offset.size), attributes: word(Offset.attributes),
                    flags: word(Offset.flags), errorOffset: word(Offset.errorOffset),
                    reserved: (0..<reservedCount).map { word(Offset.reserved + 8 * $0) })
    }

    /// The ``byteCount`` bytes of the struct. `reserved` beyond ``reservedCount`` words is
    /// dropped, missing words are 0.
    public func encode() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Self.byteCount)
        bytes.withUnsafeMutableBytes { raw in
            func put(_ v: UInt64, _ at: Int) { raw.storeBytes(of: v.littleEndian, toByteOffset: at, as: UInt64.self) }
            put(offset, Offset.offset); put(size, Offset.size); put(attributes, Offset.attributes)
            put(flags, Offset.flags); put(errorOffset, Offset.errorOffset)
            for (i, w) in reserved.prefix(Self.reservedCount).enumerated() { put(w, Offset.reserved + 8 * i) }
        }
        return bytes
    }
}
