import Glibc

/// Reading /proc: the paths and the two ways of reading them. Nothing here interprets text
/// (the parsers do).
public enum ProcFiles {
    public static func syscall(_ tid: pid_t) -> String { "/proc/\(tid)/syscall" }
    public static func status(_ tid: pid_t) -> String { "/proc/\(tid)/status" }
    public static func comm(_ tid: pid_t) -> String { "/proc/\(tid)/comm" }
    public static func fd(_ pid: pid_t, _ fd: Int32) -> String { "/proc/\(pid)/fd/\(fd)" }
    public static func fdinfo(_ pid: pid_t, _ fd: Int32) -> String { "/proc/\(pid)/fdinfo/\(fd)" }

    /// The text of a /proc file of at most `limit` bytes (one read: /proc files of this kind
    /// are generated whole), nil (errno set) when it cannot be read.
    public static func read(_ path: String, limit: Int = 4096) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: limit)
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        guard n >= 0 else { return nil }
        return String(decoding: buffer[..<n], as: UTF8.self)
    }

    /// A thread's command name (`/proc/TID/comm`, its first line), nil (errno set) when it
    /// cannot be read.
    public static func readComm(_ tid: pid_t) -> String? {
        read(comm(tid), limit: 256)?.split(separator: "\n").first.map(String.init)
    }

    /// A thread's system call (`/proc/TID/syscall`), nil (errno set) when it cannot be read,
    /// or when its text has none of ``ProcSyscall``'s formats.
    public static func readSyscall(_ tid: pid_t) -> ProcSyscall? {
        read(syscall(tid), limit: 256).flatMap { ProcSyscall(text: $0[...]) }
    }

    /// A thread's status (`/proc/TID/status`), nil (errno set) when it cannot be read or is
    /// empty or malformed.
    public static func readStatus(_ tid: pid_t) -> ProcStatus? {
        guard let text = read(status(tid)), !text.isEmpty else { return nil }
        return ProcStatus(text: text[...])
    }

    /// The open file description behind `pid`'s descriptor `fd` (`/proc/PID/fdinfo/FD`), nil
    /// (errno set) when it cannot be read or parsed.
    public static func readFDInfo(_ pid: pid_t, _ fd: Int32) -> FDInfo? {
        read(fdinfo(pid, fd)).flatMap { FDInfo(text: $0[...]) }
    }

    /// The target of a symbolic link such as `/proc/PID/fd/N` (`/dev/kvm`,
    /// `anon_inode:kvm-vm`, `/path (deleted)`), nil (errno set) when it cannot be read.
    public static func readLink(_ path: String) -> String? {
        var target = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &target, target.count - 1)
        guard n >= 0 else { return nil }
        return String(decoding: target[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
