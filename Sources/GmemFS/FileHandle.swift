import GmemCore

// The FUSE file handle of an open gmem file: how the bridge packs an open's access mode and
// serial into the one number FUSE keeps for it.
extension AccessMode {
    /// The access mode stored in an open file's handle (``handle(serial:)``).
    public init(handle: UInt64) { self.init(accessBits: handle) }

    /// The handle an open answers with: `serial << 2 | mode`. The low two bits are the access
    /// mode (read back by ``init(handle:)`` for the ioctl's write check); the serial, unique per
    /// open, makes the handle name the open file description its page references belong to.
    /// A serial of 2^62 or more loses its top bits (never reached: one open per nanosecond
    /// would take 146 years).
    public func handle(serial: UInt64) -> UInt64 { serial << 2 | rawValue }
}
