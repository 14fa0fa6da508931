import GmemABI

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
        switch GmemFileSize.problem(size) {
        case nil: return
        case .notPositivePageMultiple?: throw .invalidArgument("size must be a positive multiple of 4096")
        case .tooLarge?: throw .invalidArgument("size must be below 2^63")
        }
    }

    public init(name: String, size: UInt64, flags: GmemFlags) throws(GmemError) {
        try Self.validate(name: name)
        try Self.validate(size: size)
        self.name = name; self.size = size; self.flags = flags
    }
}
