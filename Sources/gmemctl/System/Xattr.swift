import CLinuxSys
import Glibc
import GmemABI

/// The gmemfs control interface: extended attributes on the mount root and on each file
/// (the daemon's docs/xattr-interface.md). Every call reports failures as ``SystemError``.
enum Xattr {
    // Names and limits are GmemXattr's (the daemon's own); this type only calls the kernel.

    /// Sets `name` to the UTF-8 bytes of `value`. The corresponding C function is `setxattr`.
    /// `hints` explain a refusal for this operation (``SystemError/init(_:errno:hints:)``).
    static func set(_ path: String, _ name: String, _ value: String, hints: [Int32: String] = [:]) throws {
        let bytes = Array(value.utf8)
        guard CLinuxSys.setxattr(path, name, bytes, bytes.count, 0) == 0 else {
            throw SystemError("setxattr \(name) = \"\(value)\" on \(path)", hints: hints)
        }
    }

    /// The value of `name` as text. The corresponding C function is `getxattr` (one call with an
    /// XATTR_SIZE_MAX buffer: every gmemfs value fits or is E2BIG).
    static func get(_ path: String, _ name: String, hints: [Int32: String] = [:]) throws -> String {
        var buffer = [UInt8](repeating: 0, count: GmemXattr.sizeMax)
        let n = CLinuxSys.getxattr(path, name, &buffer, buffer.count)
        guard n >= 0 else { throw SystemError("getxattr \(name) on \(path)", hints: hints) }
        return String(decoding: buffer[..<n], as: UTF8.self)
    }
}
