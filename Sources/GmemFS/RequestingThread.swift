import Glibc
import FuseKit
import LinuxProc

/// The thread behind a FUSE request, seen through proc(5) (the request's pid is the calling
/// thread's id). Reading it needs ptrace-read rights over the thread: the daemon's own user's
/// threads, or any as root; otherwise nothing is known.
struct RequestingThread {
    let tid: pid_t
    init(_ tid: pid_t) { self.tid = tid }

    /// Whether the thread is reading the file `inode` under `mountpoint` with a read-family
    /// call (and not, say, faulting on a mapping of it while reading another file into it).
    func isReading(inode: InodeNumber, under mountpoint: String) -> Bool {
        guard case .blocked(let number, let arguments)? = ProcFiles.readSyscall(tid),
              let index = SyscallNumber.readFamily[number], index < arguments.count,
              let fd = Int32(exactly: arguments[index]),
              ProcFiles.readFDInfo(tid, fd)?.inode == inode.rawValue,
              let path = ProcFiles.readLink(ProcFiles.fd(tid, fd)) else { return false }
        return path.hasPrefix(mountpoint.hasSuffix("/") ? mountpoint : mountpoint + "/")
    }
}
