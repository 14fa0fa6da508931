import Glibc
import GmemABI
import LinuxMounts

/// A failed system call, reported the way a user wants to read it:
/// `setxattr user.gmem.create = "demo 4K" on /mnt/gmem: EEXIST (File exists): a file named demo
/// already exists`. Exit status 1.
struct SystemError: Error, CustomStringConvertible {
    /// What was attempted (call and object).
    let what: String
    let errno: Int32
    /// Why, for this operation, in a sentence (from ``hint``), when known.
    let reason: String?

    /// `hints` maps an errno to the sentence for this operation; a few errnos (ENOTCONN) have a
    /// sentence for every operation.
    init(_ what: String, errno: Int32 = Glibc.errno, hints: [Int32: String] = [:]) {
        self.what = what
        self.errno = errno
        self.reason = hints[errno] ?? (errno == ENOTCONN ? Self.deadMountHint(what) : Self.commonHints[errno])
    }

    /// The ENOTCONN sentence with the dead mount's own mount point, found in mountinfo from the
    /// absolute path named in `what` (never by asking the mount).
    static func deadMountHint(_ what: String) -> String {
        var cwd = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
        let found = cwd.withUnsafeMutableBufferPointer { b in
            b.baseAddress!.withMemoryRebound(to: CChar.self, capacity: b.count) { getcwd($0, b.count) != nil }
        }
        let base = found ? String(decoding: cwd.prefix { $0 != 0 }, as: UTF8.self) : "/"
        let paths = what.split(separator: " ").map(String.init).filter { $0.hasPrefix("/") || $0.contains("/") }
            .map { $0.hasPrefix("/") ? $0 : base + "/" + $0 }
        let mounts = MountInfo.current() ?? []
        let point = paths.lazy.compactMap { MountInfo.mount(containing: $0, in: mounts) }.first { $0.isFUSE }?.mountPoint
        return "the gmemfs daemon of this mount is gone; unmount it (fusermount3 -u \(point ?? "MOUNTPOINT")) and start gmemfs again"
    }

    var description: String { "\(what): \(Self.describe(errno))" + (reason.map { ": " + $0 } ?? "") }

    /// Sentences that hold whatever the operation.
    static let commonHints: [Int32: String] = [
        ENOTCONN: "the gmemfs daemon of this mount is gone; unmount it (umount MOUNTPOINT) and start gmemfs again",
    ]

    /// `EACCES (Permission denied)`.
    static func describe(_ code: Int32) -> String {
        "\(name(of: code)) (\(String(cString: strerror(code))))"
    }

    /// The symbolic name of an errno value (`EACCES`; `E` and the number outside the table).
    static func name(of code: Int32) -> String { GmemErrnoName.symbol(code) }
}

/// Bad input on the command line, found before anything is sent: one line, exit status 64
/// (EX_USAGE, as for ArgumentParser's own parse errors).
struct UsageFailure: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

/// An operation that cannot be done or did not happen (not a gmemfs mount, a refused request
/// without an errno): one line, exit status 1.
struct Failure: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

/// gmemctl's exit statuses (documented in `gmemctl --help` and docs/tutorial.md).
enum ExitStatus {
    static let success: Int32 = 0
    /// The operation failed: the daemon refused it, a system call failed, or the path is not on
    /// a gmemfs mount.
    static let failure: Int32 = 1
    /// Bad input (EX_USAGE): a malformed number, a misaligned or out-of-range offset, an unknown
    /// flag, a missing argument. Nothing was sent.
    static let usage: Int32 = 64
}
