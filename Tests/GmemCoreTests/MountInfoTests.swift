import Foundation
import LinuxMounts
import Testing

/// `/proc/PID/mountinfo` parsing (proc(5)): fields, octal escapes, optional fields, and lines
/// that must be rejected rather than guessed at.
struct MountInfoTests {
    static let gmem = #"42 27 0:39 / /tmp/a\040b/mnt rw,nosuid,nodev,noexec,relatime shared:7 master:1 - fuse.gmemfs gmemfs rw,user_id=0,group_id=0,default_permissions"#

    @Test func parsesEveryField() throws {
        let m = try #require(MountInfo(line: Self.gmem[...]))
        #expect(m.id == 42 && m.parentID == 27)
        #expect(m.major == 0 && m.minor == 39)
        #expect(m.root == "/")
        #expect(m.mountPoint == "/tmp/a b/mnt")
        #expect(m.fileSystemType == "fuse.gmemfs" && m.source == "gmemfs")
        #expect(m.isFUSE)
        #expect(m.readAheadPath == "/sys/class/bdi/0:39/read_ahead_kb")
    }

    @Test func noOptionalFields() throws {
        let m = try #require(MountInfo(line: "25 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw"))
        #expect(m.mountPoint == "/" && m.fileSystemType == "ext4" && m.source == "/dev/sda1" && !m.isFUSE)
        #expect(m.major == 8 && m.minor == 1)
    }

    @Test(arguments: [
        (#"\040"#, " "), (#"\011"#, "\t"), (#"\012"#, "\n"), (#"\134"#, "\\"),
        (#"a\134040b"#, #"a\040b"#),            // an escaped backslash before digits stays literal
        (#"\303\251"#, "é"),                    // UTF-8 bytes, escaped one by one
        ("plain", "plain"),
    ])
    func unescapes(_ escaped: String, _ plain: String) {
        #expect(MountInfo.unescape(escaped[...]) == plain)
    }

    @Test(arguments: [#"\04"#, #"\0"#, #"\"#, #"\8xx"#, #"\400"#, #"a\09b"#])
    func rejectsMalformedEscapes(_ escaped: String) {
        #expect(MountInfo.unescape(escaped[...]) == nil)
    }

    @Test(arguments: [
        "",
        "42 27 0:39 / /mnt rw - fuse.gmemfs",           // no source
        "42 27 0:39 / /mnt rw fuse.gmemfs gmemfs rw",   // no separator
        "x 27 0:39 / /mnt rw - fuse.gmemfs gmemfs rw",  // id not a number
        "42 27 039 / /mnt rw - fuse.gmemfs gmemfs rw",  // device without ':'
        "42 27 0:-1 / /mnt rw - fuse.gmemfs gmemfs rw", // negative minor
        #"42 27 0:39 / /m\9 rw - fuse.gmemfs gmemfs rw"#, // bad escape in the mount point
        "42 27 0:39 / - rw fuse gmemfs rw",             // separator too early
    ])
    func rejectsMalformedLines(_ line: String) {
        #expect(MountInfo(line: line[...]) == nil)
    }

    @Test func lastMountOnAPathIsTheVisibleOne() {
        let text = """
            25 1 8:1 / / rw - ext4 /dev/sda1 rw
            30 25 0:40 / /mnt rw - tmpfs tmpfs rw
            garbage line
            31 30 0:41 / /mnt rw - fuse.gmemfs gmemfs rw
            32 25 0:42 / /other rw - fuseblk dev rw

            """
        let mounts = MountInfo.parse(text)
        #expect(mounts.map(\.id) == [25, 30, 31, 32])
        #expect(MountInfo.mount(at: "/mnt", in: mounts)?.minor == 41)
        #expect(MountInfo.mount(at: "/other", in: mounts)?.isFUSE == true)
        #expect(MountInfo.mount(at: "/nowhere", in: mounts) == nil)
        // The mount holding a path: the longest mount-point prefix (whole components), the
        // visible one of a stack.
        #expect(MountInfo.mount(containing: "/mnt/f", in: mounts)?.id == 31)
        #expect(MountInfo.mount(containing: "/mnt", in: mounts)?.id == 31)
        #expect(MountInfo.mount(containing: "/mntx/f", in: mounts)?.id == 25)
        #expect(MountInfo.mount(containing: "/other/a/b", in: mounts)?.id == 32)
        #expect(MountInfo.mount(containing: "/x", in: []) == nil)
    }

    /// `st_dev` of a real path matches its mount's MAJOR:MINOR, and no other's.
    @Test func deviceOfAPathMatchesItsMount() throws {
        let mounts = try #require(MountInfo.current())
        var st = stat()
        #expect(stat("/proc/self", &st) == 0)
        let proc = try #require(MountInfo.mount(containing: "/proc/self", in: mounts))
        #expect(proc.mountPoint == "/proc" && proc.isDevice(st.st_dev))
        #expect(!(MountInfo.mount(containing: "/", in: mounts)?.isDevice(st.st_dev) ?? true))
    }

    /// The real file parses completely, and lists `/`.
    @Test func currentProcess() throws {
        let mounts = try #require(MountInfo.current())
        #expect(mounts.contains { $0.mountPoint == "/" })
        let text = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        #expect(mounts.count == text.split(separator: "\n").count)
    }
}
