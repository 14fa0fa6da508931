import Glibc

/// The thread behind a FUSE request, seen through `/proc/TID/syscall` (the request's pid is the
/// calling thread's id). Reading it needs ptrace-read rights over the thread: the daemon's own
/// user's threads, or any as root; otherwise nothing is known.
struct Requester {
    let tid: pid_t
    init(_ tid: pid_t) { self.tid = tid }

    /// The system call the thread is blocked in and its arguments, or nil if it is not in one
    /// (a page fault from user mode), is gone, or cannot be inspected.
    var syscall: (number: Int, arguments: [UInt64])? {
        guard let text = PopulateGuard.readProc("/proc/\(tid)/syscall") else { return nil }
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard let first = fields.first, let number = Int(first), number >= 0 else { return nil }
        let arguments = fields.dropFirst().prefix(6).map { UInt64($0.dropFirst(2), radix: 16) ?? 0 }
        return (number, arguments)
    }

    /// x86_64 read-family calls that copy a file's contents to the caller, with the index of
    /// their source-fd argument: read, pread64, readv, sendfile, splice, preadv,
    /// copy_file_range, preadv2.
    static let readSyscalls: [Int: Int] = [0: 0, 17: 0, 19: 0, 40: 1, 275: 0, 295: 0, 326: 0, 327: 0]

    /// Whether the thread is reading the file `inode` under `mountpoint` with a read-family
    /// call (and not, say, faulting on a mapping of it while reading another file into it).
    func isReading(inode: UInt64, under mountpoint: String) -> Bool {
        guard let call = syscall, let index = Self.readSyscalls[call.number], index < call.arguments.count else { return false }
        let fd = call.arguments[index]
        guard let info = PopulateGuard.readProc("/proc/\(tid)/fdinfo/\(fd)"),
              let line = info.split(separator: "\n").first(where: { $0.hasPrefix("ino:") }),
              UInt64(line.dropFirst(4).trimmingPrefix(while: { $0 == " " || $0 == "\t" })) == inode else { return false }
        var target = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/\(tid)/fd/\(fd)", &target, target.count - 1)
        guard n > 0 else { return false }
        let path = String(decoding: target[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return path.hasPrefix(mountpoint.hasSuffix("/") ? mountpoint : mountpoint + "/")
    }
}
