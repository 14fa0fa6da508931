import Foundation
import GmemABI
import GmemTestSupport
import LinuxMounts
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Mounting somewhere that cannot work is refused before anything happens (one line, exit
/// status 1, no "created" log line, no mount); a relative mountpoint works like an absolute one.
@Suite(.serialized, .enabled(if: FUSE.available))
struct MountpointTests {
    /// A fresh directory holding `mnt/`; removed (after unmounting anything left) by `body`'s end.
    static func withDirectory(_ body: (_ dir: String, _ mnt: String) throws -> Void) throws {
        let dir = try makeTemporaryDirectory("gmemfs-mnt")
        let mnt = dir + "/mnt"
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        defer {
            while GmemMount.isMounted(mnt) {
                guard (try? run(["fusermount3", "-u", "-z", mnt], timeout: 10))?.succeeded == true else { break }
            }
            try? FileManager.default.removeItem(atPath: dir)
        }
        try body(dir, mnt)
    }

    static func gmemfs(_ arguments: [String]) throws -> CommandResult {
        try run([binDirectory() + "/gmemfs", "-f", "-o", "auto_unmount", "--file", "f:64K"] + arguments, timeout: 20)
    }

    /// The refusal is one line naming the path, with exit status 1, before any file is created.
    static func expectRefused(_ r: CommandResult, _ words: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == 1 && !r.signaled, "\(r)", sourceLocation: sourceLocation)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.contains(words), "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(!r.stderr.contains("created"), sourceLocation: sourceLocation)
    }

    @Test func notADirectory() throws {
        try Self.withDirectory { (dir: String, _: String) throws in
            let file = dir + "/somefile"
            #expect(FileManager.default.createFile(atPath: file, contents: Data("x".utf8)))
            Self.expectRefused(try Self.gmemfs([file]), "\(file) is not a directory")
            #expect(!GmemMount.isMounted(file))
            Self.expectRefused(try Self.gmemfs([dir + "/missing"]), "\(dir)/missing does not exist")
        }
    }

    @Test func alreadyALiveGmemfsMount() throws {
        let m = try GmemMount(["--file", "g:8K"])
        defer { m.unmount() }
        for args in [[m.path], ["-o", "nonempty", m.path]] {
            Self.expectRefused(try Self.gmemfs(args), "\(m.path) is already a gmemfs mount")
        }
        // Also through a path with a symlink and "..": the check compares resolved paths.
        let link = (m.path as NSString).deletingLastPathComponent + "/link"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: m.path)
        Self.expectRefused(try Self.gmemfs([link + "/../mnt"]), "\(m.path) is already a gmemfs mount")
        // The first daemon is still the one serving, alone.
        #expect(access(m.file("g"), F_OK) == 0 && access(m.file("f"), F_OK) != 0)
        let mounts = try String(contentsOfFile: "/proc/mounts", encoding: .utf8)
        #expect(mounts.split(separator: "\n").filter { $0.contains(" \(m.path) ") }.count == 1)
    }

    /// gmemfs processes started at the same moment on one directory: exactly one mounts, the
    /// others are refused as "already a gmemfs mount" (the check holds a lock on the directory
    /// until the mount is up). Five rounds of four starts.
    @Test func concurrentStartsMountOnce() throws {
        try Self.withDirectory { (dir: String, mnt: String) throws in
            for round in 1...5 {
                // Daemon mode: each gmemfs returns once mounted (0) or refused (1). system(3): a
                // daemonizing command outlives Process's view of it (see LifecycleTests).
                let script = """
                    for i in 1 2 3 4; do
                        timeout -s KILL 20 '\(binDirectory())/gmemfs' --file f:64K '\(mnt)' >'\(dir)/out.'$i 2>&1 </dev/null &
                    done
                    ok=0; for i in 1 2 3 4; do wait -n && ok=$((ok + 1)); done
                    echo "$ok" > '\(dir)/ok'
                    """
                try script.write(toFile: dir + "/race.sh", atomically: true, encoding: .utf8)
                #expect(system("/bin/bash '\(dir)/race.sh'") == 0)
                let ok = (try? String(contentsOfFile: dir + "/ok", encoding: .utf8)) ?? ""
                let outputs = (1...4).map { (try? String(contentsOfFile: "\(dir)/out.\($0)", encoding: .utf8)) ?? "" }.joined()
                let stacked = (MountInfo.current() ?? []).filter { $0.mountPoint == mnt }.count
                #expect(ok == "1\n" && stacked == 1, "round \(round): \(ok) mounted, \(stacked) mounts: \(outputs)")
                #expect(outputs.components(separatedBy: "is already a gmemfs mount").count == 4, "round \(round): \(outputs)")
                while GmemMount.isMounted(mnt) {
                    guard (try? run(["fusermount3", "-u", mnt], timeout: 10))?.succeeded == true else { break }
                }
                for i in 1...4 { unlink("\(dir)/out.\(i)") }
                unlink(dir + "/ok")
            }
        }
    }

    @Test func deadFuseMount() throws {
        try Self.withDirectory { (_: String, mnt: String) throws in
            // No auto_unmount: a SIGKILL leaves the mount dead behind it.
            let p = try startForegroundGmemfs(["-o", "noauto_unmount", "--file", "f:64K", mnt])
            #expect(LifecycleTests.eventually(10) { GmemMount.isMounted(mnt) })
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            var st = stat()
            #expect(stat(mnt, &st) == -1 && errno == ENOTCONN)
            Self.expectRefused(try Self.gmemfs([mnt]), "run 'fusermount3 -u \(mnt)' first")
            // The advice works: after it the same command mounts.
            #expect(try run(["fusermount3", "-u", mnt]).succeeded)
            // system(3): a daemonizing command outlives Process's view of it (see LifecycleTests).
            let status = system("timeout -s KILL 20 '\(binDirectory())/gmemfs' -o auto_unmount --file f:64K '\(mnt)' >/dev/null 2>&1 </dev/null")
            #expect(status == 0)
            #expect(access(mnt + "/f", F_OK) == 0)
        }
    }

    /// `cd DIR; gmemfs rel`: resolved before the daemon changes to `/`, so the read-ahead
    /// setting finds the mount's bdi (as root; the default is 1024 KiB).
    @Test(.enabled(if: geteuid() == 0, "sysfs read_ahead_kb needs root"))
    func relativeMountpointGetsReadAhead() throws {
        try Self.withDirectory { (dir: String, mnt: String) throws in
            let r = system("cd '\(dir)' && timeout -s KILL 20 '\(binDirectory())/gmemfs' -o auto_unmount --read-ahead-kb 768 --file f:64K:init-shared mnt >/dev/null 2>&1 </dev/null")
            #expect(r == 0)
            // The window is set while INIT is served, which may follow the command's return;
            // any request waits for INIT to finish. It also shows the daemon knows its absolute
            // mountpoint (it recognises readers under it).
            #expect(try run(["cat", mnt + "/f"]).succeeded)
            let line = try #require(try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
                .split(separator: "\n").last { $0.split(separator: " ")[4] == mnt })
            let device = line.split(separator: " ")[2]
            let kb = try String(contentsOfFile: "/sys/class/bdi/\(device)/read_ahead_kb", encoding: .utf8)
            #expect(kb == "768\n")
        }
    }

    /// `--max-memory 0` is "no cap", not zero bytes.
    @Test func maxMemoryZeroMeansNoCap() throws {
        let m = try GmemMount(["--file", "f:64K:init-shared", "--max-memory", "0"])
        defer { m.unmount() }
        #expect(stats(m.path)[.maxMemory] == "none")
        #expect((try? write(m.file("f"), Array(repeating: 7, count: 65536), at: 0)) == 65536)
        #expect(stats(m.path)[.allocatedBytes] == "65536")
    }

    /// In daemon mode (stderr is /dev/null) `--log-file` still gets one line per refused
    /// request, with the reason and the requester's pid; `--log-level warning` silences them.
    @Test func refusalReasonsReachTheLogFileInDaemonMode() throws {
        try Self.withDirectory { (dir: String, mnt: String) throws in
            let log = dir + "/gmemfs.log"
            let start = system("cd '\(dir)' && timeout -s KILL 20 '\(binDirectory())/gmemfs' -o auto_unmount --file f:64K --log-file gmemfs.log mnt >/dev/null 2>&1 </dev/null")
            #expect(start == 0)
            let bad = try run(["setfattr", "-n", "user.gmem.set_attributes", "-v", "4096 100 private", mnt + "/f"])
            #expect(!bad.succeeded && bad.stderr.contains("Invalid argument"))
            let past = try run(["setfattr", "-n", "user.gmem.set_attributes", "-v", "0 128K private", mnt + "/f"])
            #expect(!past.succeeded)
            #expect(throws: Errno.fileExists) { try Sys.setxattr(mnt, GmemXattr.create, "f 4K") }
            let text = try String(contentsOfFile: log, encoding: .utf8)
            let refusals = text.split(separator: "\n").filter { $0.contains("refused") }
            #expect(refusals.count == 3, "\(text)")
            #expect(refusals.first?.contains(#"setxattr user.gmem.set_attributes "4096 100 private" on /f from pid "#) == true, "\(text)")
            #expect(refusals.first?.contains("multiples of 4096") == true, "\(text)")
            #expect(refusals.dropFirst().first?.contains("past the end") == true, "\(text)")
            #expect(refusals.last?.contains("'f' exists") == true, "\(text)")
            #expect(text.contains("mounted on \(mnt)"))
            #expect(try run(["fusermount3", "-u", mnt]).succeeded)
        }
        try Self.withDirectory { (dir: String, mnt: String) throws in
            let log = dir + "/quiet.log"
            #expect(system("timeout -s KILL 20 '\(binDirectory())/gmemfs' -o auto_unmount --file f:64K --log-file '\(log)' --log-level warning '\(mnt)' >/dev/null 2>&1 </dev/null") == 0)
            #expect(throws: Errno.invalidArgument) { try convert(mnt + "/f", "1 4096 private") }
            #expect(try run(["fusermount3", "-u", mnt]).succeeded)
            #expect(try String(contentsOfFile: log, encoding: .utf8).isEmpty)
        }
    }
}
