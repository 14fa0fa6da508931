import Foundation
import GmemTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Small helpers shared by the mount suites.
let page = 4096

/// `user.gmem.attributes` of `path` (fails the test on error).
func attributes(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) -> String {
    switch Sys.getxattr(path, "user.gmem.attributes") {
    case .success(let s): return s
    case .failure(let e):
        Issue.record("getxattr user.gmem.attributes: \(e)", sourceLocation: sourceLocation)
        return ""
    }
}

/// `user.gmem.stats` of `path` as a dictionary.
func stats(_ path: String) -> [String: String] {
    guard case .success(let s) = Sys.getxattr(path, "user.gmem.stats") else { return [:] }
    var d: [String: String] = [:]
    for line in s.split(separator: "\n") {
        let kv = line.split(separator: "=", maxSplits: 1)
        if kv.count == 2 { d[String(kv[0])] = String(kv[1]) }
    }
    return d
}

/// `user.gmem.set_attributes`: 0 or the errno.
func convert(_ path: String, _ value: String) -> Int32 { Sys.setxattr(path, "user.gmem.set_attributes", value) }

/// The whole content of `path` as the host may read it (or the errno).
func contents(_ path: String, count: Int, offset: Int = 0) -> Result<[UInt8], Sys.Errno> {
    switch Sys.openFD(path, O_RDONLY) {
    case .failure(let e): return .failure(e)
    case .success(let fd):
        defer { close(fd) }
        return Sys.pread(fd, count: count, offset: offset)
    }
}

/// Writes `bytes` at `offset` through a fresh O_RDWR fd (the count or the errno).
func write(_ path: String, _ bytes: [UInt8], at offset: Int) -> Result<Int, Sys.Errno> {
    switch Sys.openFD(path, O_RDWR) {
    case .failure(let e): return .failure(e)
    case .success(let fd):
        defer { close(fd) }
        return Sys.pwrite(fd, bytes, offset: offset)
    }
}

/// st_blocks of `path` (or -1).
func blocks(_ path: String) -> Int {
    if case .success(let st) = Sys.stat(path) { return Int(st.st_blocks) }
    return -1
}

extension Result where Failure == Sys.Errno {
    /// The errno of a failure, or 0.
    var errnoCode: Int32 {
        if case .failure(let e) = self { return e.code }
        return 0
    }
    var value: Success? { try? get() }
}
