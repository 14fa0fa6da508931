import Foundation
import GmemABI
import GmemTestSupport
import Testing

/// gmemfs in the FUSE ecosystem: `-o` words, `mount -t fuse.gmemfs`, fstab, `mount -a`, and
/// `auto_unmount` on by default.
@Suite(.serialized, .enabled(if: FUSE.available))
struct MountHelperTests {
    static var gmemfs: String { binDirectory() + "/gmemfs" }

    /// Runs `script` with bash in a private mount namespace in which `gmemfs` is found by
    /// mount.fuse3. mount(8) drops PATH before running its helper, so mount.fuse3's
    /// `/bin/sh -c 'gmemfs ...'` searches only the shell's default path: the namespace binds a
    /// directory holding `gmemfs` over /usr/local/sbin (first in that path; the host is untouched).
    /// The script gets `$DIR` (a fresh directory with `mnt/`) and must unmount what it mounts.
    static func inMountNamespace(_ script: String) throws -> CommandResult {
        let dir = try makeTemporaryDirectory("gmemfs-test")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/mnt", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/sbin", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir + "/sbin/gmemfs", withDestinationPath: gmemfs)
        let prologue = """
            set -euo pipefail
            DIR='\(dir)'
            MNT="$DIR/mnt"
            # Whatever happens, nothing stays mounted (a private namespace hides it, but the
            # daemon would keep running).
            trap 'while mountpoint -q "$MNT"; do umount -l "$MNT"; done' EXIT
            test -d /usr/local/sbin
            mount --bind "$DIR/sbin" /usr/local/sbin
            # umount, retried while EBUSY: right after mounting, the daemon's read-ahead helper
            # thread may still be in its stat(2) of the mountpoint.
            umnt() { for _ in $(seq 50); do umount "$1" 2>/dev/null && return 0; sleep 0.1; done; umount "$1"; }

            """
        return try run(["unshare", "--mount", "--propagation", "private", "/bin/bash", "-c", prologue + script], timeout: 60)
    }

    @Test func mountTypeFuseGmemfs() throws {
        let r = try Self.inMountNamespace("""
            # generic mount(8) words (noatime, _netdev, x-*) must not be refused
            mount -t fuse.gmemfs gmemfs "$MNT" -o file=vm:1M:mmap,guest_view,noatime,_netdev,x-test.ignored=1
            grep " $MNT " /proc/self/mounts
            setfattr -n user.gmem.set_attributes -v "0 4096 shared" "$MNT/vm"
            echo hello | dd of="$MNT/vm" conv=notrunc status=none
            echo "read: $(head -c 5 "$MNT/vm")"
            echo "guest: $(head -c 5 "$MNT/.guest/vm")"
            umnt "$MNT"
            echo "after: $(grep -c " $MNT " /proc/self/mounts || true)"
            """)
        #expect(r.succeeded, "\(r) \(r.output)")
        #expect(r.output.hasPrefix("gmemfs /tmp/gmemfs-test.") && r.output.contains("/mnt fuse.gmemfs "), "\(r.output)")
        #expect(r.output.contains("read: hello\n"), "\(r.output)")
        #expect(r.output.contains("guest: hello\n"), "\(r.output)")
        #expect(r.output.contains("after: 0\n"), "\(r.output)")
    }

    @Test func fstabLineAndMountAllIsIdempotent() throws {
        let r = try Self.inMountNamespace("""
            printf '%s\\n' "vm0 $MNT fuse.gmemfs file=a:64K:mmap+init-shared,max_memory=8K,nofail 0 0" > "$DIR/fstab"
            mount -T "$DIR/fstab" "$MNT"
            echo "source: $(awk -v m="$MNT" '$2 == m { print $1 }' /proc/self/mounts)"
            echo "flags: $(getfattr --absolute-names --only-values -n user.gmem.flags "$MNT/a")"
            echo "max: $(getfattr --absolute-names --only-values -n user.gmem.stats "$MNT" | grep '^max_memory=')"
            umnt "$MNT"
            mount -a -T "$DIR/fstab"
            mount -a -T "$DIR/fstab"
            echo "mounts: $(grep -c " $MNT " /proc/self/mounts)"
            umnt "$MNT"
            echo "after: $(grep -c " $MNT " /proc/self/mounts || true)"
            """)
        #expect(r.succeeded, "\(r) \(r.output)")
        #expect(r.output.contains("source: vm0\n"), "SOURCE becomes the fsname: \(r.output)")
        #expect(r.output.contains("flags: mmap init-shared\n"), "\(r.output)")
        #expect(r.output.contains("max: max_memory=8192\n"), "\(r.output)")
        #expect(r.output.contains("mounts: 1\n"), "a second mount -a mounts nothing: \(r.output)")
        #expect(r.output.contains("after: 0\n"), "\(r.output)")
    }

    /// Bad `-o` words fail with exit 64 and a message naming the word, before mounting.
    @Test(arguments: [
        ("bogus", "unknown mount option 'bogus'"),
        ("kernel_cache", "unknown mount option 'kernel_cache'"),
        ("file=vm:1X", "-o file=vm:1X"),
        ("file", "-o file: expected file=NAME:SIZE[:FLAGS]"),
        ("file=vm:8K:mmap+nope", "unknown flag 'nope'"),
        ("guest_view=1", "'guest_view' takes no value"),
        ("max_memory=lots", "-o max_memory=lots"),
        ("read_ahead_kb=-1", "-o read_ahead_kb=-1"),
        ("threads=99999999999", "-o threads=99999999999"),
        ("threads=1", "--threads must be at least 2"),
    ])
    func badOptionsFailBeforeMounting(_ word: String, _ message: String) throws {
        let dir = try makeTemporaryDirectory("gmemfs-test")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try run([Self.gmemfs, "-f", "-o", "allow_other," + word, "gmemfs", dir])
        #expect(r.status == 64 && !r.signaled, "\(r)")
        #expect(r.stderr.contains(message), "\(r.stderr)")
        #expect(!GmemMount.isMounted(dir))
    }

    /// The `-o` words set what the long options set.
    @Test func wordsMatchLongOptions() throws {
        let m = try GmemMount(["-o", "file=a:16K:mmap+init-shared,file=b:8K,guest_view,kernel_compat,max_memory=64K,threads=4,read_ahead_kb=0", "label"])
        defer { m.unmount() }
        #expect(try Sys.getxattr(m.file("a"), GmemXattr.flags) == "mmap init-shared")
        #expect(try Sys.getxattr(m.file("b"), GmemXattr.flags) == "")
        #expect(stats(m.path)[.maxMemory] == "65536")
        #expect(access(m.guest("a"), F_OK) == 0)
        // kernel_compat: pread(2) is ESPIPE as on a guest_memfd.
        #expect(throws: Errno.illegalSeek) { try contents(m.file("a"), count: 1) }
        let mounts = try String(contentsOfFile: "/proc/mounts", encoding: .utf8)
        #expect(mounts.contains("label \(m.path) fuse.gmemfs "), "SOURCE is the fsname")
    }

    /// Whether `path` is still a mount point of a dead daemon ("Transport endpoint is not connected").
    static func isDeadMount(_ path: String) -> Bool {
        guard GmemMount.isMounted(path) else { return false }
        let fd = open(path, O_RDONLY | O_DIRECTORY)   // OPENDIR: a request, unlike a cached lookup
        if fd >= 0 { close(fd); return false }
        return errno == ENOTCONN
    }

    /// Without any `-o`, a SIGKILLed daemon leaves no mount: auto_unmount is the default.
    @Test func killedForegroundDaemonLeavesNoMount() throws {
        for _ in 0..<3 {
            let dir = try makeTemporaryDirectory("gmemfs-test")
            defer {
                if GmemMount.isMounted(dir) { _ = try? run(["fusermount3", "-u", "-z", dir]) }
                try? FileManager.default.removeItem(atPath: dir)
            }
            let p = try startForegroundGmemfs(["--read-ahead-kb", "0", "--file", "f:64K:init-shared", dir])   // see killedDaemonLeavesNoMount
            #expect(LifecycleTests.eventually(20) { GmemMount.isMounted(dir) })
            #expect(try Sys.withFD(dir + "/f", O_RDWR) { try Sys.pwrite($0, Array("x".utf8), offset: 0) } == 1)
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            #expect(LifecycleTests.eventually(20) { !GmemMount.isMounted(dir) },
                    "dead mount left: \(LifecycleTests.autoUnmountDiagnostics(dir))")
        }
    }

    /// The same in daemon mode, with the pid from `--pid-file` (written before gmemfs returns).
    @Test func killedDaemonLeavesNoMount() throws {
        for _ in 0..<3 {
            let dir = try makeTemporaryDirectory("gmemfs-test")
            let mnt = dir + "/mnt", pidFile = dir + "/pid"
            try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
            defer {
                if GmemMount.isMounted(mnt) { _ = try? run(["fusermount3", "-u", "-z", mnt]) }
                try? FileManager.default.removeItem(atPath: dir)
            }
            // system(3): the daemon outlives the command (see LifecycleTests.daemonModeReturnsOnceMounted).
            // --read-ahead-kb 0: no helper thread stats the mount; a SIGKILL during that stat
            // hangs the dying daemon, a separate bug with its own test.
            let status = system("'\(Self.gmemfs)' --read-ahead-kb 0 --pid-file '\(pidFile)' --file f:64K '\(mnt)' >/dev/null 2>&1 </dev/null")
            #expect(status == 0)
            #expect(GmemMount.isMounted(mnt), "mounted when gmemfs returns")
            let text = try String(contentsOfFile: pidFile, encoding: .utf8)
            let pid = try #require(pid_t(text.trimmingCharacters(in: .newlines)), "pid file: \(text.debugDescription)")
            #expect(text.hasSuffix("\n"))
            let cmdline = try String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)
            #expect(cmdline.hasPrefix(Self.gmemfs + "\0"), "the pid is the daemon's: \(cmdline)")
            kill(pid, SIGKILL)
            #expect(LifecycleTests.eventually(20) { !GmemMount.isMounted(mnt) },
                    "dead mount left: \(LifecycleTests.autoUnmountDiagnostics(mnt))")
        }
    }

    /// `-o noauto_unmount` turns the default off: a killed daemon leaves the dead mount.
    @Test func noautoUnmountKeepsTheDeadMount() throws {
        let dir = try makeTemporaryDirectory("gmemfs-test")
        defer {
            if GmemMount.isMounted(dir) { _ = try? run(["fusermount3", "-u", "-z", dir]) }
            try? FileManager.default.removeItem(atPath: dir)
        }
        let p = try startForegroundGmemfs(["-o", "noauto_unmount,read_ahead_kb=0", "--file", "f:64K", dir])
        #expect(LifecycleTests.eventually(20) { GmemMount.isMounted(dir) })
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        usleep(300_000)
        #expect(Self.isDeadMount(dir), "noauto_unmount: the mount outlives the daemon")
        #expect(try run(["fusermount3", "-u", "-z", dir]).succeeded)
    }
}
