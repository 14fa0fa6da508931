/// `/proc/PID/fdinfo/FD` (proc(5)): the common fields of an open file description.
///
/// Lines `pos:\t0`, `flags:\t0100002` (octal, as open(2)'s flags plus O_CLOEXEC for the
/// descriptor), `mnt_id:\t29`, `ino:\t1234`; file systems add more lines after them, which are
/// ignored.
public struct FDInfo: Sendable, Equatable {
    public let position: UInt64
    /// The open flags (octal in the file).
    public let flags: UInt32
    public let mountID: Int
    public let inode: UInt64

    public init(position: UInt64, flags: UInt32, mountID: Int, inode: UInt64) {
        self.position = position; self.flags = flags; self.mountID = mountID; self.inode = inode
    }

    /// Parses the file's text; nil unless `pos`, `flags`, `mnt_id` and `ino` are each present
    /// once with a valid number (kernels before 5.14 have no `ino` line: nil there too).
    public init?(text: Substring) {
        var fields: [Substring: Substring] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon]
            guard ["pos", "flags", "mnt_id", "ino"].contains(key) else { continue }
            guard fields[key] == nil else { return nil }
            fields[key] = line[line.index(after: colon)...].drop(while: { $0 == " " || $0 == "\t" })
        }
        guard let pos = fields["pos"].flatMap({ UInt64($0) }),
              let flags = fields["flags"].flatMap({ UInt32($0, radix: 8) }),
              let mnt = fields["mnt_id"].flatMap({ Int($0) }), mnt >= 0,
              let ino = fields["ino"].flatMap({ UInt64($0) }) else { return nil }
        self.init(position: pos, flags: flags, mountID: mnt, inode: ino)
    }
}
