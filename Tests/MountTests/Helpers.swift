import Foundation
import GmemABI
import GmemTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Small helpers shared by the mount suites.
let page = Int(gmemPageSize)

/// `user.gmem.attributes` of `path` (fails the test on error).
func attributes(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) -> String {
    do {
        return try Sys.getxattr(path, GmemXattr.attributes)
    } catch {
        Issue.record("getxattr \(GmemXattr.attributes): \(error)", sourceLocation: sourceLocation)
        return ""
    }
}

/// `user.gmem.stats` of `path` (no lines when it cannot be read).
func stats(_ path: String) -> GmemStats {
    GmemStats(parsing: (try? Sys.getxattr(path, GmemXattr.stats)) ?? "")
}

/// `user.gmem.set_attributes` with a raw value.
func convert(_ path: String, _ value: String) throws(Errno) { try Sys.setxattr(path, GmemXattr.setAttributes, value) }

/// Up to `count` bytes at `offset` as the host may read them, through a fresh O_RDONLY fd.
func contents(_ path: String, count: Int, offset: Int = 0) throws(Errno) -> [UInt8] {
    let fd = try Sys.open(path, O_RDONLY)
    defer { try? fd.close() }
    return try Sys.pread(fd, count: count, offset: offset)
}

/// Writes `bytes` at `offset` through a fresh O_RDWR fd: the count written.
func write(_ path: String, _ bytes: [UInt8], at offset: Int) throws(Errno) -> Int {
    let fd = try Sys.open(path, O_RDWR)
    defer { try? fd.close() }
    return try Sys.pwrite(fd, bytes, offset: offset)
}

/// st_blocks of `path` (or -1).
func blocks(_ path: String) -> Int {
    (try? Sys.stat(path)).map { Int($0.st_blocks) } ?? -1
}

/// Starts `gmemfs -f ARGS` with its output discarded, for tests that kill the daemon themselves
/// (a ``GmemMount`` unmounts and stops its daemon on its own).
func startForegroundGmemfs(_ args: [String]) throws -> Process {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: binDirectory() + "/gmemfs")
    p.arguments = ["-f"] + args
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    return p
}
