import Glibc

/// A failed system call, reported the way a user wants to read it:
/// `setxattr user.gmem.set_attributes on /mnt/demo: EINVAL (Invalid argument)`.
struct SystemError: Error, CustomStringConvertible {
    /// What was attempted (call and object).
    let what: String
    let errno: Int32

    init(_ what: String, errno: Int32 = Glibc.errno) {
        self.what = what
        self.errno = errno
    }

    var description: String { "\(what): \(Self.describe(errno))" }

    /// `EACCES (Permission denied)`.
    static func describe(_ code: Int32) -> String {
        "\(name(of: code)) (\(String(cString: strerror(code))))"
    }

    /// The symbolic name of an errno value (`EACCES`), or `errno N` for one not in the table.
    static func name(of code: Int32) -> String { names[code] ?? "errno \(code)" }

    private static let names: [Int32: String] = [
        EPERM: "EPERM", ENOENT: "ENOENT", ESRCH: "ESRCH", EINTR: "EINTR", EIO: "EIO", ENXIO: "ENXIO",
        E2BIG: "E2BIG", EBADF: "EBADF", ECHILD: "ECHILD", EAGAIN: "EAGAIN", ENOMEM: "ENOMEM",
        EACCES: "EACCES", EFAULT: "EFAULT", EBUSY: "EBUSY", EEXIST: "EEXIST", EXDEV: "EXDEV",
        ENODEV: "ENODEV", ENOTDIR: "ENOTDIR", EISDIR: "EISDIR", EINVAL: "EINVAL", ENFILE: "ENFILE",
        EMFILE: "EMFILE", ENOTTY: "ENOTTY", EFBIG: "EFBIG", ENOSPC: "ENOSPC", ESPIPE: "ESPIPE",
        EROFS: "EROFS", EMLINK: "EMLINK", EPIPE: "EPIPE", ERANGE: "ERANGE", ENAMETOOLONG: "ENAMETOOLONG",
        ENOSYS: "ENOSYS", ENODATA: "ENODATA", EOVERFLOW: "EOVERFLOW", EOPNOTSUPP: "EOPNOTSUPP",
        ENOTCONN: "ENOTCONN", ETIMEDOUT: "ETIMEDOUT",
    ]
}

/// A usage-level failure with a plain message (no errno).
struct UsageFailure: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}
