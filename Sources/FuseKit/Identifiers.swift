/// The number the kernel names an inode by in every request (`fuse_ino_t`, the protocol's
/// `nodeid`); 1 is the root. What the other numbers mean is the file system's choice.
public struct InodeNumber: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    /// `FUSE_ROOT_ID`.
    public static let root = InodeNumber(1)
    public var description: String { String(rawValue) }
}

/// The number a file system answers an open with (`fuse_file_info.fh`), handed back with each
/// request on that open file; 0 when a request has no open file. What it means is the file
/// system's choice. (Not `FileHandle`: Foundation has one.)
public struct FuseFileHandle: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public var description: String { String(rawValue) }
}
