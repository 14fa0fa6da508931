import CLinuxSys
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Thin errno-returning wrappers over the syscalls tests exercise, so a test can assert the
/// exact errno (tools print messages, not errnos).
public enum Sys {
    /// 0 on success, else errno.
    public static func setxattr(_ path: String, _ name: String, _ value: String) -> Int32 {
        let bytes = Array(value.utf8)
        return CLinuxSys.setxattr(path, name, bytes, bytes.count, 0) == 0 ? 0 : errno
    }

    public static func setxattr(_ path: String, _ name: String, bytes: [UInt8]) -> Int32 {
        CLinuxSys.setxattr(path, name, bytes, bytes.count, 0) == 0 ? 0 : errno
    }

    /// The value, or the errno.
    public static func getxattr(_ path: String, _ name: String) -> Result<String, Errno> {
        var buf = [UInt8](repeating: 0, count: 65536)
        let n = CLinuxSys.getxattr(path, name, &buf, buf.count)
        guard n >= 0 else { return .failure(Errno(errno)) }
        return .success(String(decoding: buf[..<n], as: UTF8.self))
    }

    public struct Errno: Error, Equatable, CustomStringConvertible {
        public let code: Int32
        public init(_ c: Int32) { code = c }
        public var description: String { "\(code) (\(String(cString: strerror(code))))" }
    }

    /// Opens, runs `body` with the fd, closes. Throws the errno of a failed open.
    public static func withFD<T>(_ path: String, _ flags: Int32, _ body: (Int32) throws -> T) throws -> T {
        let fd = open(path, flags)
        guard fd >= 0 else { throw Errno(errno) }
        defer { close(fd) }
        return try body(fd)
    }

    /// pread: the bytes or the errno.
    public static func pread(_ fd: Int32, count: Int, offset: Int) -> Result<[UInt8], Errno> {
        var buf = [UInt8](repeating: 0, count: count)
        let n = Glibc.pread(fd, &buf, count, offset)
        return n < 0 ? .failure(Errno(errno)) : .success(Array(buf[..<n]))
    }

    /// pwrite: the count or the errno.
    public static func pwrite(_ fd: Int32, _ bytes: [UInt8], offset: Int) -> Result<Int, Errno> {
        let n = Glibc.pwrite(fd, bytes, bytes.count, offset)
        return n < 0 ? .failure(Errno(errno)) : .success(n)
    }

    /// fallocate: 0 or the errno.
    public static func fallocate(_ fd: Int32, mode: Int32, offset: Int, length: Int) -> Int32 {
        CLinuxSys.fallocate(fd, mode, offset, length) == 0 ? 0 : errno
    }
}

/// Mode bits of fallocate(2).
public enum Falloc {
    public static let keepSize: Int32 = 0x01
    public static let punchHole: Int32 = 0x02
    public static let zeroRange: Int32 = 0x10
}
