import CLinuxSys
import GmemABI
@_exported import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The syscalls tests exercise, on swift-system's `FileDescriptor` and `Errno`, with one
/// convention: a call returns its result or throws the `Errno` it failed with, so a test can
/// assert the exact errno (tools print messages, not errnos):
///
///     #expect(throws: Errno.invalidArgument) { try Sys.setxattr(f, GmemXattr.create, "x") }
///     #expect(failure { try Sys.pread(fd, count: 1, offset: 0) } == .permissionDenied)
///
/// What swift-system already has (`FileDescriptor.open`, `read(fromAbsoluteOffset:)`,
/// `seek`, `close`) is used as it is; `Sys` adds the calls it lacks (xattrs, fallocate, stat,
/// the conversion ioctl) and short forms that return the bytes.
public enum Sys {
    /// The result of a C call that returns -1 and sets errno on failure, or that errno thrown
    /// (for the calls `Sys` does not wrap: `try Sys.checked(mkdir(path, 0o755))`).
    @discardableResult
    public static func checked<T: BinaryInteger>(_ result: T) throws(Errno) -> T {
        guard result >= 0 else { throw Errno(rawValue: errno) }
        return result
    }

    // MARK: - Extended attributes

    public static func setxattr(_ path: String, _ name: String, _ value: String) throws(Errno) {
        try setxattr(path, name, bytes: Array(value.utf8))
    }

    public static func setxattr(_ path: String, _ name: String, bytes: [UInt8]) throws(Errno) {
        try checked(CLinuxSys.setxattr(path, name, bytes, bytes.count, 0))
    }

    /// The value as text (one call with an XATTR_SIZE_MAX buffer).
    public static func getxattr(_ path: String, _ name: String) throws(Errno) -> String {
        var buf = [UInt8](repeating: 0, count: GmemXattr.sizeMax)
        let n = try checked(CLinuxSys.getxattr(path, name, &buf, buf.count))
        return String(decoding: buf[..<n], as: UTF8.self)
    }

    /// The names, in the order the file system lists them.
    public static func listxattr(_ path: String) throws(Errno) -> [String] {
        var buf = [CChar](repeating: 0, count: GmemXattr.sizeMax)
        let n = try checked(CLinuxSys.listxattr(path, &buf, buf.count))
        return buf[..<n].split(separator: 0).map { String(decoding: $0.map { UInt8(bitPattern: $0) }, as: UTF8.self) }
    }

    public static func removexattr(_ path: String, _ name: String) throws(Errno) {
        try checked(CLinuxSys.removexattr(path, name))
    }

    // MARK: - Files

    /// stat(2).
    public static func stat(_ path: String) throws(Errno) -> Glibc.stat {
        var st = Glibc.stat()
        try checked(cStat(path, &st))
        return st
    }

    /// open(2) with raw flags (O_DIRECT and friends that `FileDescriptor.OpenOptions` lacks).
    public static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644) throws(Errno) -> FileDescriptor {
        FileDescriptor(rawValue: try checked(Glibc.open(path, flags, mode)))
    }

    /// Opens, runs `body` with the descriptor, closes.
    @discardableResult
    public static func withFD<T>(_ path: String, _ flags: Int32, _ body: (FileDescriptor) throws -> T) throws -> T {
        let fd = try open(path, flags)
        defer { try? fd.close() }
        return try body(fd)
    }

    /// pread(2) of up to `count` bytes: the bytes read (fewer at the end of the file).
    public static func pread(_ fd: FileDescriptor, count: Int, offset: Int) throws(Errno) -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: count)
        let n = try checked(buf.withUnsafeMutableBytes { Glibc.pread(fd.rawValue, $0.baseAddress, count, off_t(offset)) })
        return Array(buf[..<n])
    }

    /// pwrite(2): the count written.
    public static func pwrite(_ fd: FileDescriptor, _ bytes: [UInt8], offset: Int) throws(Errno) -> Int {
        try checked(bytes.withUnsafeBytes { Glibc.pwrite(fd.rawValue, $0.baseAddress, bytes.count, off_t(offset)) })
    }

    /// lseek(2) with a raw whence (SEEK_DATA/SEEK_HOLE included): the new offset.
    public static func seek(_ fd: FileDescriptor, _ offset: Int, _ whence: Int32) throws(Errno) -> Int {
        Int(try checked(Glibc.lseek(fd.rawValue, off_t(offset), whence)))
    }

    /// fallocate(2); `mode` is FALLOC_FL_* bits.
    public static func fallocate(_ fd: FileDescriptor, mode: Int32, offset: Int, length: Int) throws(Errno) {
        try checked(CLinuxSys.fallocate(fd.rawValue, mode, off_t(offset), off_t(length)))
    }

    /// ioctl `command` (KVM_SET_MEMORY_ATTRIBUTES2 by default) with the struct built from the
    /// arguments.
    public static func setMemoryAttributes2(_ fd: FileDescriptor, offset: UInt64, size: UInt64, attributes: UInt64,
                                            flags: UInt64 = 0, reserved: [UInt64] = Array(repeating: 0, count: KVMMemoryAttributes2.reservedCount),
                                            command: UInt = UInt(KVMMemoryAttributes2.ioctlNumber)) throws(Errno) {
        var bytes = KVMMemoryAttributes2(offset: offset, size: size, attributes: attributes, flags: flags, reserved: reserved).encode()
        try checked(bytes.withUnsafeMutableBytes { clinux_ioctl_ptr(fd.rawValue, command, $0.baseAddress) })
    }
}

/// The `Errno` that `body` throws, or nil when it succeeds: for an errno inside a larger
/// expectation (`#expect(throws:)` covers the plain case).
/// `body` may throw only `Errno` (every ``Sys`` call does); anything else is a harness bug.
public func failure<T>(_ body: () throws -> T) -> Errno? {
    do {
        _ = try body()
        return nil
    } catch let e as Errno {
        return e
    } catch {
        preconditionFailure("\(error) is not an Errno")
    }
}

/// Mode bits of fallocate(2), as the kernel defines them (`<linux/falloc.h>`).
public enum Falloc {
    public static let keepSize = Int32(FALLOC_FL_KEEP_SIZE)
    public static let punchHole = Int32(FALLOC_FL_PUNCH_HOLE)
    public static let zeroRange = Int32(FALLOC_FL_ZERO_RANGE)
    public static let collapseRange = Int32(FALLOC_FL_COLLAPSE_RANGE)
    public static let insertRange = Int32(FALLOC_FL_INSERT_RANGE)
}

private func cStat(_ path: String, _ st: inout stat) -> Int32 { stat(path, &st) }
