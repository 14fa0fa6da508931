import FuseKit
import GmemCore

/// The FUSE file handle of an open gmem file: how the bridge packs an open's access mode and
/// serial into the one number FUSE keeps for it (``fileHandle``), `serial << 2 | mode`.
///
/// The low two bits are the access mode (read back by ``access`` for the ioctl's write check);
/// the serial, unique per open, makes the handle name the open file description its page
/// references belong to. A serial of 2^62 or more loses its top bits (never reached: one open
/// per nanosecond would take 146 years).
struct GmemFileHandle: Hashable, Sendable {
    /// The number FUSE keeps.
    let fileHandle: FuseFileHandle

    /// The handle FUSE gives back with each request on the open file.
    init(_ fileHandle: FuseFileHandle) { self.fileHandle = fileHandle }

    /// The handle an open answers with.
    init(access: AccessMode, serial: UInt64) { fileHandle = FuseFileHandle(serial << 2 | access.rawValue) }

    var access: AccessMode { AccessMode(accessBits: fileHandle.rawValue) }
}
