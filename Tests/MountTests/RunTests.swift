import Foundation
import GmemTestSupport
import LinuxMounts
import Testing
#if canImport(Glibc)
import Glibc
#endif

enum SeccompSupport {
    /// Whether this kernel offers `SECCOMP_RET_USER_NOTIF`.
    static let userNotification = ((try? String(contentsOfFile: "/proc/sys/kernel/seccomp/actions_avail", encoding: .utf8)) ?? "")
        .split(whereSeparator: { $0 == " " || $0 == "\n" }).contains("user_notif")
}

/// `gmemctl run`: a program that knows only the kernel's guest_memfd uAPI
/// (`Resources/guest_memfd_uapi.c`, with its own header) runs, linked dynamically and
/// statically, on this machine's KVM (which may lack guest_memfd) and on the stand-in /dev/kvm
/// (`--emulate-kvm`, and /dev/kvm hidden in a private mount namespace); the kernel oracle's
/// kernel side gives under `run` what gmemfs gives in kernel-compat mode; and nothing is left
/// behind, even when gmemctl is killed.
@Suite(.serialized, .enabled(if: FUSE.available && SeccompSupport.userNotification, "needs FUSE and seccomp user notification"))
struct RunTests {
    static let realKVM = access("/dev/kvm", R_OK | W_OK) == 0
    static let isRoot = geteuid() == 0 && findExecutable("unshare") != nil
    static var gmemctl: String { binDirectory() + "/gmemctl" }

    enum Linking: String, CaseIterable { case dynamic, `static` }

    /// The uAPI program, compiled once per linking.
    static let programs: Result<[Linking: String], HarnessError> = {
        do {
            let dir = try makeTemporaryDirectory("gmem-run")
            var out: [Linking: String] = [:]
            for l in Linking.allCases {
                out[l] = try CProgram.compile("guest_memfd_uapi.c", to: "\(dir)/guest_memfd_uapi-\(l.rawValue)",
                                              flags: ["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-pthread"] + (l == .static ? ["-static"] : []))
            }
            return .success(out)
        } catch {
            return .failure(HarnessError("\(error)"))
        }
    }()

    func expectAllChecksPass(_ r: CommandResult, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.succeeded, "\(r)\n\(r.output)", sourceLocation: sourceLocation)
        #expect(r.output.contains("failures=0"), "\(r.output)", sourceLocation: sourceLocation)
        #expect(!r.output.contains("FAIL"), "\(r.output)", sourceLocation: sourceLocation)
    }

    @Test(.enabled(if: RunTests.realKVM, "needs /dev/kvm (a KVM with or without guest_memfd)"), arguments: Linking.allCases)
    func uapiProgramOnTheRealKVM(_ linking: Linking) throws {
        let program = try #require(try Self.programs.get()[linking])
        let r = try run([Self.gmemctl, "run", "--", program], timeout: 120)
        expectAllChecksPass(r)
        // The memslot on a file without MMAP (a divergence) is explained on stderr, once.
        #expect(r.stderr.components(separatedBy: "bound to a memslot only when it was created with GUEST_MEMFD_FLAG_MMAP").count == 2, "\(r.stderr)")
    }

    /// Memslots on a guest_memfd bound from two threads at once, while a third makes trapped
    /// calls and an interval timer interrupts every notification wait (Resources/memslot_threads.c):
    /// each binding drives its own thread by ptrace and lets the others' calls wait, never answer
    /// them wrongly.
    @Test(.enabled(if: RunTests.realKVM, "needs /dev/kvm (memslots go to the real KVM)"), arguments: Linking.allCases)
    func memslotsFromThreadsUnderSignals(_ linking: Linking) throws {
        let dir = try makeTemporaryDirectory("gmem-run-slots")
        let program = try CProgram.compile("memslot_threads.c", to: "\(dir)/memslot_threads-\(linking.rawValue)",
                                           flags: ["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-pthread"] + (linking == .static ? ["-static"] : []))
        let r = try run([Self.gmemctl, "run", "--", program], timeout: 300)
        #expect(r.output == "binds=200 caps_wrong=0\n", "\(r)")
        #expect(r.succeeded && r.stderr.isEmpty, "\(r)")
    }

    /// docs/semantics.md, "Under gmemctl run": a guest_memfd never bound is freed when closed; one
    /// that was bound stays mapped (gmemctl's mapping of its guest view) after the slot is deleted
    /// and the descriptor closed, and is freed when the process exits. Under `ulimit -n 1024`,
    /// after 1100 other files: the guest views gmemctl keeps of freed files are let go.
    @Test(.enabled(if: RunTests.realKVM, "needs /dev/kvm (memslots go to the real KVM)"))
    func memoryOfABoundGuestMemfdGoesWithTheProcess() throws {
        let dir = try makeTemporaryDirectory("gmem-run-life")
        let program = try CProgram.compile("memslot_lifetime.c", to: "\(dir)/memslot_lifetime", flags: ["-std=gnu11", "-Wall", "-Wextra", "-Werror"])
        let m = try GmemMount(["--guest-view", "--kernel-compat"])
        defer { m.unmount() }
        let r = try run(["sh", "-c", "ulimit -n 1024 && exec \"$0\" run --mount \"$1\" -- \"$2\"", Self.gmemctl, m.path, program], timeout: 300)
        #expect(r.output == """
            created: 1048576
            closed, never bound: 0
            bound, deleted, closed: guest view still mapped: yes

            """, "\(r)")
        var allocated = stats(m.path)[.allocatedBytes]
        for _ in 0..<500 where allocated != "0" {   // FUSE's release is asynchronous
            usleep(10_000)
            allocated = stats(m.path)[.allocatedBytes]
        }
        #expect(allocated == "0")
    }

    @Test(arguments: Linking.allCases)
    func uapiProgramOnTheStandInKVM(_ linking: Linking) throws {
        let program = try #require(try Self.programs.get()[linking])
        let r = try run([Self.gmemctl, "run", "--emulate-kvm", "--in-place-cap", "246", "--", program, "--emulated", "--in-place-cap", "246"], timeout: 120)
        expectAllChecksPass(r)
        #expect(r.stderr.contains("KVM_CREATE_VCPU needs a real KVM"), "\(r.stderr)")
    }

    /// /dev/kvm really absent: a private mount namespace with a tmpfs on /dev holding only
    /// null, zero, urandom and fuse. `run` must notice and give the stand-in by itself.
    @Test(.enabled(if: RunTests.isRoot, "needs root for unshare -m and mknod"), arguments: Linking.allCases)
    func uapiProgramWithoutDevKVM(_ linking: Linking) throws {
        let program = try #require(try Self.programs.get()[linking])
        let script = """
            set -e
            mount -t tmpfs -o mode=755 none /dev
            mknod -m 666 /dev/null c 1 3; mknod -m 666 /dev/zero c 1 5
            mknod -m 666 /dev/urandom c 1 9; mknod -m 666 /dev/fuse c 10 229
            test ! -e /dev/kvm
            exec "$0" run -- "$1" --emulated
            """
        let r = try run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, Self.gmemctl, program], timeout: 120)
        expectAllChecksPass(r)
    }

    /// The kernel oracle's kernel side, run under `run`, answers as gmemfs's side does in
    /// kernel-compat mode, except where `run` gives the kernel's answer that FUSE cannot
    /// (MAP_PRIVATE: EINVAL, ENODEV without MMAP) and where the file is anonymous (`stat/nlink`: 0, the kernel 1;
    /// docs/semantics.md).
    @Test func oracleKernelSideOnTheStandInMatchesKernelCompatMode() throws {
        try compareOracle(emulated: true)
    }

    @Test(.enabled(if: RunTests.realKVM, "needs /dev/kvm (a KVM with or without guest_memfd)"))
    func oracleKernelSideOnTheRealKVMMatchesKernelCompatMode() throws {
        try compareOracle(emulated: false)
    }

    func compareOracle(emulated: Bool) throws {
        let oracle = try KernelOracleTests.program.get()
        let underRun = try run([Self.gmemctl, "run"] + (emulated ? ["--emulate-kvm"] : []) + ["--", oracle, "kernel"], timeout: 300)
        #expect(underRun.succeeded, "\(underRun)")
        #expect(!underRun.output.hasPrefix("SKIP"), "\(underRun.output)")
        let m = try GmemMount(["--file", "unused:4K", "--kernel-compat"])
        defer { m.unmount() }
        let onGmemfs = try run([oracle, "gmemfs", m.path], timeout: 300)
        #expect(onGmemfs.succeeded, "\(onGmemfs)")
        let a = KernelOracleTests.parse(underRun.output), b = KernelOracleTests.parse(onGmemfs.output)
        #expect(a.count > 600 && Set(a.keys) == Set(b.keys))
        var differences: [String: String] = [:]
        for (key, value) in a where b[key] != value { differences[key] = value }
        let variants = ["flags=0", "flags=mmap", "flags=mmap,init-shared"]
        var expected: [String: String] = [:]
        for v in variants {
            expected["\(v) stat/nlink"] = "0"
            // kvm_gmem_mmap: ENODEV without GUEST_MEMFD_FLAG_MMAP (checked first), else EINVAL
            expected["\(v) mmap/private-r"] = v == "flags=0" ? "ENODEV" : "EINVAL"
            expected["\(v) mmap/private-rw"] = v == "flags=0" ? "ENODEV" : "EINVAL"
        }
        #expect(differences == expected)
    }

    // MARK: - Lifecycle

    @Test func exitStatusIsCommands() throws {
        #expect(try run([Self.gmemctl, "run", "--", "true"]).status == 0)
        #expect(try run([Self.gmemctl, "run", "--", "sh", "-c", "exit 3"]).status == 3)
        let killed = try run([Self.gmemctl, "run", "--", "sh", "-c", "kill -TERM $$"])
        #expect(killed.status == 128 + SIGTERM && !killed.signaled)
        #expect(try run([Self.gmemctl, "run", "--", "/nonexistent/command"]).status == 127)
    }

    @Test func badInputStartsNothing() throws {
        let none = try run([Self.gmemctl, "run"])
        #expect(none.status == 64 && none.stderr.split(separator: "\n").count == 1, "\(none)")
        let notGmemfs = try run([Self.gmemctl, "run", "--mount", "/tmp", "--", "touch", "/tmp/gmem-run-must-not-exist"])
        #expect(notGmemfs.status == 1 && notGmemfs.stderr.contains("not on a gmemfs mount"), "\(notGmemfs)")
        #expect(access("/tmp/gmem-run-must-not-exist", F_OK) != 0)
    }

    /// `-o` reaches the private gmemfs; it is in kernel-compat mode unless `--no-kernel-compat`;
    /// a bad `-o` word is gmemfs's one-line refusal.
    @Test func privateMountOptions() throws {
        let r = try run([Self.gmemctl, "run", "-o", "max_memory=1M", "--", "sh", "-c",
                         "getfattr --absolute-names --only-values -n user.gmem.stats \"$GMEM_RUN_MOUNT\"; dd if=\"$GMEM_RUN_MOUNT\"/gmem bs=4096 count=1 of=/dev/null"])
        #expect(r.output.contains("max_memory=1048576"), "\(r)")
        #expect(r.stderr.contains("Invalid argument"), "kernel-compat: read EINVAL: \(r.stderr)")
        let tools = try run([Self.gmemctl, "run", "--no-kernel-compat", "--", "sh", "-c", "dd if=\"$GMEM_RUN_MOUNT\"/gmem bs=4096 count=1 of=/dev/null"])
        #expect(tools.stderr.contains("Permission denied"), "default mode: a private page is EACCES: \(tools.stderr)")
        let bad = try run([Self.gmemctl, "run", "-o", "bogus_option", "--", "true"])
        #expect(bad.status == 1 && bad.stderr.contains("unknown mount option 'bogus_option'") && bad.stderr.split(separator: "\n").count == 1, "\(bad)")
    }

    /// With `--mount`, the guest_memfds are files of that mount: named in `.trace` after the
    /// process that made them, and freed when their last descriptor closes.
    @Test func existingMountIsUsedAndLeftMounted() throws {
        let program = try #require(try Self.programs.get()[.dynamic])
        let m = try GmemMount(["--kernel-compat", "--file", "x:4K"])
        defer { m.unmount() }
        let r = try run([Self.gmemctl, "run", "--mount", m.path, "--", "sh", "-c", "echo \"$GMEM_RUN_MOUNT\""])
        #expect(r.succeeded && r.output.trimmingCharacters(in: .whitespacesAndNewlines) == m.path, "\(r)")
        let tracePath = m.path + "/../trace.txt"
        let reader = Process()
        reader.executableURL = URL(fileURLWithPath: "/bin/cat")
        reader.arguments = [m.path + "/.trace"]
        #expect(FileManager.default.createFile(atPath: tracePath, contents: nil))
        reader.standardOutput = FileHandle(forWritingAtPath: tracePath)
        try reader.run()
        let uapi = try run([Self.gmemctl, "run", "--mount", m.path, "--", program, "--no-guest-view"], timeout: 120)
        expectAllChecksPass(uapi)
        usleep(300_000)
        kill(reader.processIdentifier, SIGKILL)   // a test runner may hand its children SIGTERM blocked
        reader.waitUntilExit()
        let trace = (try? String(contentsOfFile: tracePath, encoding: .utf8)) ?? ""
        #expect(trace.contains(" kvm-gmem.") && trace.contains(" read-refused "), "\(trace.prefix(2000))")
        let s = stats(m.path)
        #expect(s[.files] == "1" && s[.allocatedBytes] == "0", "\(s)")
        #expect(DaemonProcess.isMounted(m.path))
    }

    /// SIGTERM to gmemctl reaches COMMAND; gmemctl exits with COMMAND's status and removes the mount.
    @Test func signalsArePassedOnToCommand() throws {
        let dir = try makeTemporaryDirectory("gmem-run-signal")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let report = dir + "/report"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.gmemctl)
        p.arguments = ["run", "--", "sh", "-c", "echo \"$GMEM_RUN_MOUNT\" > \(report).tmp; mv \(report).tmp \(report); exec sleep 300"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        var mountpoint = ""
        for _ in 0..<1000 where mountpoint.isEmpty {
            usleep(10_000)
            mountpoint = ((try? String(contentsOfFile: report, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(!mountpoint.isEmpty)
        kill(p.processIdentifier, SIGTERM)
        for _ in 0..<1000 where p.isRunning { usleep(10_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        #expect(p.terminationReason == .exit && p.terminationStatus == 128 + SIGTERM, "\(p.terminationReason) \(p.terminationStatus)")
        #expect(!mountpoint.isEmpty && !DaemonProcess.isMounted(mountpoint) && access(mountpoint, F_OK) != 0)
    }

    /// Job control from an interactive shell on a terminal: COMMAND has the terminal; when it
    /// stops, gmemctl's job stops too, and `fg` continues both.
    @Test(.enabled(if: findExecutable("script") != nil, "needs script(1) for a terminal"))
    func jobControlFromAShell() throws {
        let dir = try makeTemporaryDirectory("gmem-run-jobs")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = dir + "/job.sh"
        try """
            set -m
            '\(Self.gmemctl)' run -- sh -c 'ps -o tpgid= -p $$ > \(dir)/tpgid; echo $$ > \(dir)/pgid; kill -TSTP $$; echo resumed; exit 5'
            echo "after stop $?"
            fg
            echo "after fg $?"

            """.write(toFile: script, atomically: true, encoding: .utf8)
        let r = try run(["script", "-qec", "bash --norc --noprofile -i \(script)", "/dev/null"], timeout: 60)
        let out = r.output.replacingOccurrences(of: "\r", with: "")
        #expect(out.contains("after stop \(128 + SIGSTOP)") && out.contains("resumed") && out.contains("after fg 5"), "\(out)")
        let tpgid = (try? String(contentsOfFile: dir + "/tpgid", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        let pgid = (try? String(contentsOfFile: dir + "/pgid", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(tpgid != nil && tpgid == pgid, "COMMAND has the terminal: tpgid \(tpgid ?? "-"), its group \(pgid ?? "-")")
    }

    /// Whether `pid` is gone (a zombie counts: it was killed and waits for its reaper).
    static func gone(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 else { return true }
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        return stat.range(of: ") Z ") != nil
    }

    @Test func sigkillOfGmemctlLeavesNothing() throws {
        let dir = try makeTemporaryDirectory("gmem-run-kill")
        let report = dir + "/report"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.gmemctl)
        p.arguments = ["run", "--", "sh", "-c", "sleep 301 & echo \"$GMEM_RUN_MOUNT $! $$\" > \(report).tmp; mv \(report).tmp \(report); exec sleep 300"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        var fields: [String] = []
        for _ in 0..<1000 where fields.count != 3 {
            usleep(10_000)
            fields = ((try? String(contentsOfFile: report, encoding: .utf8)) ?? "").split(whereSeparator: \.isWhitespace).map(String.init)
        }
        guard fields.count == 3, let background = pid_t(fields[1]), let command = pid_t(fields[2]) else {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            Issue.record("COMMAND did not report: \(fields)")
            return
        }
        let mountpoint = fields[0]
        #expect(DaemonProcess.isMounted(mountpoint))
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        let parent = (mountpoint as NSString).deletingLastPathComponent
        var clean = false
        for _ in 0..<1000 where !clean {   // at most 10 s
            usleep(10_000)
            clean = !DaemonProcess.isMounted(mountpoint) && access(parent, F_OK) != 0 && Self.gone(background) && Self.gone(command)
        }
        #expect(!DaemonProcess.isMounted(mountpoint), "mount left")
        #expect(access(parent, F_OK) != 0, "directory \(parent) left")
        #expect(Self.gone(background) && Self.gone(command), "COMMAND's processes left")
        if !clean {
            kill(background, SIGKILL); kill(command, SIGKILL)
            _ = try? run(["fusermount3", "-u", "-z", mountpoint])
        }
        try? FileManager.default.removeItem(atPath: dir)
    }
}
