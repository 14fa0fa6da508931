import CLinuxSys

extension GuestMemFile {
    /// The offset of a read or write request: negative is EINVAL (`rw_verify_area`).
    public static func offset(_ offset: Int) throws(GmemError) -> UInt64 {
        guard offset >= 0 else { throw .invalidArgument("negative offset") }
        return UInt64(offset)
    }
}

/// The `lseek(2)` whence values the daemon answers (the kernel handles `SEEK_SET`, `SEEK_CUR`
/// and `SEEK_END` itself).
public enum SeekWhence: Sendable, Equatable {
    /// `SEEK_DATA`: the next byte of data (a private page, or an allocated shared one).
    case data
    /// `SEEK_HOLE`: the next byte of a hole (a shared, unallocated page; the end of the file counts).
    case hole
}

/// An `lseek(2)` with `SEEK_DATA` or `SEEK_HOLE`, decoded.
public struct SeekRequest: Sendable, Equatable {
    public let offset: UInt64
    public let whence: SeekWhence

    /// Rules, in order: any other whence is EINVAL; a negative offset is ENXIO (no data or hole
    /// lies at or after it, as in the kernel's `seek_data`/`seek_hole` helpers).
    public init(offset: Int, whence: Int32) throws(GmemError) {
        switch whence {
        case Int32(CLINUX_SEEK_DATA): self.whence = .data
        case Int32(CLINUX_SEEK_HOLE): self.whence = .hole
        default: throw .invalidArgument("whence \(whence) is not SEEK_DATA or SEEK_HOLE")
        }
        guard offset >= 0 else { throw .noSuchOffset(Int64(offset)) }
        self.offset = UInt64(offset)
    }
}
