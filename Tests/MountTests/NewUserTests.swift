import Foundation
import GmemTestSupport
import LinuxMounts
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What a newcomer tries first: the answers must say what went wrong and what to do.
@Suite(.serialized, .enabled(if: FUSE.available))
struct NewUserTests {
    /// `echo hi > FILE` (O_TRUNC) is EINVAL and `>>` ENOSPC, as the kernel's fixed size makes
    /// them; the daemon's log says why and names the fix.
    @Test func truncatingAndAppendingWritesAreRefusedWithAReason() throws {
        let m = try GmemMount(["--file", "f:8K:init-shared"])
        defer { m.unmount() }
        let truncating = try run(["/bin/bash", "-c", "echo hi > '\(m.file("f"))'"])
        #expect(!truncating.succeeded && truncating.stderr.contains("Invalid argument"), "\(truncating)")
        #expect(m.log.contains("refused open on /f") && m.log.contains("dd conv=notrunc"), "\(m.log)")
        let appending = try run(["/bin/bash", "-c", "echo hi >> '\(m.file("f"))'"])
        #expect(!appending.succeeded && appending.stderr.contains("No space left"), "\(appending)")
        #expect(m.log.contains("refused write [8192, +3) on /f") && m.log.contains("appending cannot work"), "\(m.log)")
        // The fix the log names works.
        #expect(try run(["/bin/bash", "-c", "echo hi | dd of='\(m.file("f"))' conv=notrunc status=none"]).succeeded)
    }

    /// A daemon-mode mount that works prints nothing (as sshfs and squashfuse).
    @Test func daemonModeSuccessIsSilent() throws {
        try MountpointTests.withDirectory { dir, mnt in
            // system(3): a daemonizing command outlives Process's view of it (see LifecycleTests).
            let status = system("timeout -s KILL 20 '\(binDirectory())/gmemfs' --file f:4K '\(mnt)' >'\(dir)/out' 2>&1 </dev/null")
            #expect(status == 0 && GmemMount.isMounted(mnt))
            let out = (try? String(contentsOfFile: dir + "/out", encoding: .utf8)) ?? "?"
            #expect(out.isEmpty, "printed: \(out)")
        }
    }

    /// gmemctl takes what the xattr takes, says what is wrong with the value given, and its
    /// JSON has a number or null where a number belongs.
    @Test func gmemctlInputs() throws {
        let m = try GmemMount(["--file", "f:64K"])
        defer { m.unmount() }
        let gmemctl = binDirectory() + "/gmemctl"
        let convert = try run([gmemctl, "convert", "Shared", m.file("f"), "0", "4K"])
        #expect(convert.succeeded, "\(convert)")
        #expect(try Sys.getxattr(m.file("f"), "user.gmem.attributes") == "0-1000 shared\n1000-10000 private\n")
        let watch = try run([gmemctl, "watch", "--interval", "-1", m.file("f")])
        #expect(watch.status == 64 && watch.stderr.contains("--interval '-1' is negative") && !watch.stderr.contains("offsets"), "\(watch)")
        let map = try run([gmemctl, "map", "--svg", "/nonexistent/x.svg", m.file("f")])
        #expect(map.status == 64 && map.output.isEmpty && map.stderr.contains("/nonexistent does not exist"), "\(map) \(map.output)")
        let stats = try run([gmemctl, "stats", "--json", m.path])
        let compact = stats.output.replacingOccurrences(of: " ", with: "")
        #expect(stats.succeeded && compact.contains("\"max_memory\":null"), "\(stats.output)")
    }

    /// On a dead mount gmemctl names the mount point to unmount, not a placeholder.
    @Test func gmemctlNamesTheDeadMount() throws {
        try MountpointTests.withDirectory { dir, mnt in
            // No auto_unmount: a SIGKILL leaves the mount dead behind it.
            let p = try startForegroundGmemfs(["-o", "noauto_unmount", "--file", "f:64K", mnt])
            #expect(LifecycleTests.eventually(10) { GmemMount.isMounted(mnt) })
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            let r = try run([binDirectory() + "/gmemctl", "stats", mnt + "/f"])
            #expect(r.status == 1 && r.stderr.contains("fusermount3 -u \(mnt))") && !r.stderr.contains("MOUNTPOINT"), "\(r)")
        }
    }

    /// An unmount ends `gmemctl watch` cleanly (it reported the file as missing).
    @Test func watchEndsWithTheMount() throws {
        let m = try GmemMount(["--file", "f:64K"])
        defer { m.unmount() }
        let r = try run(["/bin/bash", "-c", """
            "$0" watch --json --interval 0.05 "$1/f" > /dev/null &
            w=$!
            sleep 0.5
            fusermount3 -u "$1"
            wait $w
            """, binDirectory() + "/gmemctl", m.path], timeout: 30)
        #expect(r.status == 0 && r.stderr.contains("\(m.path) was unmounted; the watch ends") && !r.stderr.contains("ENOENT"), "\(r)")
    }

    static func gmemfs(_ arguments: [String]) throws -> CommandResult {
        try run([binDirectory() + "/gmemfs", "-f"] + arguments, timeout: 20)
    }

    /// Input mistakes get a message about that input, before anything is mounted.
    @Test func inputMistakesAreNamed() throws {
        try MountpointTests.withDirectory { _, mnt in
            let cases: [([String], String)] = [
                (["--threads", "-1"], "-1"),
                (["--read-ahead-kb", "-1"], "--read-ahead-kb must be between 0 and 1048576"),
                (["--max-memory", "5"], "less than one page"),
                (["--max-memory", "-1"], "'-1' is not a size"),
                (["--pid-file", "/nonexistent/p"], "--pid-file /nonexistent/p: cannot write in /nonexistent"),
                (["-o", "pid_file=/nonexistent/p"], "cannot write in /nonexistent"),
                (["--file", "a:4K", "--file", "a:8K"], "--file a is given twice"),
                (["--bogus"], "Unknown option '--bogus'"),
            ]
            for (arguments, message) in cases {
                let r = try Self.gmemfs(arguments + [mnt])
                #expect(r.status == 64 && r.stderr.contains(message) && !r.stderr.contains("Missing value"), "\(arguments): \(r)")
                // One line, not the whole usage, and nothing created.
                #expect(r.stderr.split(separator: "\n").count == 1 && !r.stderr.contains("created"), "\(arguments): \(r.stderr)")
                #expect(!GmemMount.isMounted(mnt), "\(arguments) mounted")
            }
        }
    }
}

/// The set-up scripts check for the Swift toolchain first and say where to get it.
struct SetUpScriptTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    static let toolchainOutsideUsrBin = !FileManager.default.fileExists(atPath: "/usr/bin/swift") && !FileManager.default.fileExists(atPath: "/bin/swift")

    /// Run with PATH=/usr/bin:/bin, which then holds no `swift`.
    @Test(.enabled(if: toolchainOutsideUsrBin, "swift is in /usr/bin or /bin: PATH cannot leave it out"),
          arguments: ["mount.sh", "test.sh", "install.sh"])
    func withoutSwiftTheScriptsSayWhatToInstall(script: String) throws {
        let r = try run(["/bin/bash", Self.root + "/Scripts/" + script], environment: ["PATH": "/usr/bin:/bin"])
        #expect(r.status == 1, "\(r)")
        #expect(r.stderr.contains("Swift 6 toolchain") && r.stderr.contains("https://www.swift.org/install/linux/"), "\(r.stderr)")
        #expect(!r.stderr.contains("command not found"), "\(r.stderr)")
    }
}

