import FuseKit

/// The one place the daemon's inode numbering lives (FuseKit's ``InodeNumber`` carries the
/// number; what it names is decided here):
/// - 1 the root, 2 `.guest`, 3 `.maps`, 4 `.trace`;
/// - each file a pair from ``firstFile``: its host view even, its guest view the odd number
///   after it (``guestView``); a file is keyed by its host number;
/// - a file's `.maps/NAME`: its host number with bit 62 set (``mapFile``).
extension InodeNumber {
    /// `MOUNTPOINT/.guest` (with `--guest-view`).
    static let guestDirectory = InodeNumber(2)
    /// `MOUNTPOINT/.maps` (docs/trace.md).
    static let mapsDirectory = InodeNumber(3)
    /// `MOUNTPOINT/.trace` (docs/trace.md).
    static let trace = InodeNumber(4)
    /// The host number of the first file.
    static let firstFile = InodeNumber(16)
    static let mapBit: UInt64 = 1 << 62

    /// What a number names; a file is given by its host number (which may name no file).
    enum Target: Equatable {
        case root, guestDirectory, mapsDirectory, trace
        case host(InodeNumber)
        case guest(host: InodeNumber)
        case map(host: InodeNumber)
    }

    var target: Target {
        switch self {
        case .root: .root
        case .guestDirectory: .guestDirectory
        case .mapsDirectory: .mapsDirectory
        case .trace: .trace
        case _ where rawValue & Self.mapBit != 0: .map(host: InodeNumber(rawValue & ~Self.mapBit))
        case _ where rawValue & 1 == 0: .host(self)
        default: .guest(host: InodeNumber(rawValue & ~1))
        }
    }

    /// The guest view's number of the file whose host number this is.
    var guestView: InodeNumber { InodeNumber(rawValue + 1) }
    /// The `.maps/NAME` number of the file whose host number this is.
    var mapFile: InodeNumber { InodeNumber(rawValue | Self.mapBit) }
    /// The host number of the file created after this one.
    var nextFile: InodeNumber { InodeNumber(rawValue + 2) }

}
