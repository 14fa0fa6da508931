import Glibc

/// One line of `/proc/PID/mountinfo` (proc(5)): what is mounted where, read without making a
/// request to any mount (a daemon must never ask its own mount: a kill while a worker serves
/// that request leaves an unkillable process holding `/dev/fuse`).
///
/// Line format: `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS`.
/// ROOT, MOUNTPOINT and SOURCE escape space, tab, newline and backslash as `\040`, `\011`,
/// `\012`, `\134`.
public struct MountInfo: Sendable, Equatable {
    public let id: Int
    public let parentID: Int
    /// The device of the mounted file system: for FUSE, the bdi is `/sys/class/bdi/MAJOR:MINOR`.
    public let major: UInt32
    public let minor: UInt32
    public let root: String
    public let mountPoint: String
    /// `fuse.gmemfs` for a gmemfs mount (`fuse.` + the `subtype=` option).
    public let fileSystemType: String
    public let source: String

    /// Parses one line; nil when it is not in the format above (validate-first: nothing is
    /// guessed from a malformed line).
    public init?(line: Substring) {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard let dash = fields.firstIndex(of: "-"), dash >= 6, fields.count >= dash + 3,
              let id = Int(fields[0]), let parent = Int(fields[1]) else { return nil }
        let device = fields[2].split(separator: ":", omittingEmptySubsequences: false)
        guard device.count == 2, let major = UInt32(device[0]), let minor = UInt32(device[1]),
              let root = Self.unescape(fields[3]), let mountPoint = Self.unescape(fields[4]),
              let source = Self.unescape(fields[dash + 2]) else { return nil }
        self.id = id
        self.parentID = parent
        self.major = major
        self.minor = minor
        self.root = root
        self.mountPoint = mountPoint
        self.fileSystemType = String(fields[dash + 1])
        self.source = source
    }

    /// Every parsable line of `text`, in the file's order (a mount stacked on the same mount
    /// point comes after the one it hides).
    public static func parse(_ text: String) -> [MountInfo] {
        text.split(separator: "\n").compactMap { MountInfo(line: $0) }
    }

    /// The calling process's mounts (`/proc/self/mountinfo`), or nil if it cannot be read.
    public static func current() -> [MountInfo]? {
        let fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { return nil }
            if n == 0 { break }
            bytes += chunk[..<n]
        }
        return parse(String(decoding: bytes, as: UTF8.self))
    }

    /// The visible mount at `path` (an absolute, resolved path): the last one listed there.
    public static func mount(at path: String, in mounts: [MountInfo]) -> MountInfo? {
        mounts.last { $0.mountPoint == path }
    }

    /// The visible mount holding `path` (an absolute, resolved path): the one whose mount point
    /// is the longest prefix of it, the last listed among mounts stacked on that point.
    public static func mount(containing path: String, in mounts: [MountInfo]) -> MountInfo? {
        var best: MountInfo?
        for m in mounts where m.mountPoint == "/" || path == m.mountPoint || path.hasPrefix(m.mountPoint + "/") {
            if m.mountPoint.utf8.count >= (best?.mountPoint.utf8.count ?? 0) { best = m }
        }
        return best
    }

    /// Whether `dev` (a `st_dev`) is this mount's device (glibc's `major`/`minor` encoding,
    /// which are macros Swift cannot call).
    public func isDevice(_ dev: dev_t) -> Bool {
        let d = UInt64(dev)
        return major == UInt32(truncatingIfNeeded: ((d >> 8) & 0xfff) | ((d >> 32) & ~0xfff))
            && minor == UInt32(truncatingIfNeeded: (d & 0xff) | ((d >> 12) & ~0xff))
    }

    /// Whether the file system is served through FUSE (`fuse`, `fuse.SUBTYPE`, `fuseblk`).
    public var isFUSE: Bool { fileSystemType == "fuse" || fileSystemType == "fuseblk" || fileSystemType.hasPrefix("fuse.") }

    /// The bdi's read-ahead knob for this mount.
    public var readAheadPath: String { "/sys/class/bdi/\(major):\(minor)/read_ahead_kb" }

    /// Undoes the kernel's `\OOO` octal escapes; nil for a malformed escape.
    public static func unescape(_ field: Substring) -> String? {
        var out: [UInt8] = []
        var bytes = Array(field.utf8)[...]
        while let b = bytes.popFirst() {
            guard b == UInt8(ascii: "\\") else { out.append(b); continue }
            let digits = bytes.prefix(3)
            guard digits.count == 3, digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "7")).contains($0) }) else { return nil }
            let value = digits.reduce(0) { $0 * 8 + Int($1 - UInt8(ascii: "0")) }
            guard value <= 255 else { return nil }
            out.append(UInt8(value))
            bytes = bytes.dropFirst(3)
        }
        return String(decoding: out, as: UTF8.self)
    }
}
