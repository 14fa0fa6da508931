import Foundation
import GmemTestSupport
import LinuxMounts
import Testing

/// The integration-test kit of docs/integration-testing.md runs as users would run it: the
/// shell example with contrib/gmemfs-test.sh, and the pytest example with its fixture.
@Suite(.serialized, .enabled(if: FUSE.available))
struct IntegrationKitTests {
    /// The repository's root (this file is Tests/MountTests/IntegrationKitTests.swift).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// Runs `argv` with the kit's variables: `GMEMFS` is the built binary, `TMPDIR` a fresh
    /// directory (the kit makes its mountpoints there), which must end up empty and unmounted.
    static func runKit(_ argv: [String], timeout: TimeInterval = 60, environment: [String: String] = [:]) throws -> CommandResult {
        let tmp = try makeTemporaryDirectory("gmemfs-test")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let r = try run(argv, timeout: timeout, environment: ["GMEMFS": binDirectory() + "/gmemfs", "TMPDIR": tmp].merging(environment) { $1 })
        let mounts = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? ""
        let left = mounts.split(separator: "\n").map { String($0.split(separator: " ")[1]) }.filter { $0.hasPrefix(tmp + "/") }
        #expect(left.isEmpty, "the kit left mounts: \(left)")
        for m in left { _ = try? run(["fusermount3", "-u", "-z", m]) }
        let files = (try? FileManager.default.contentsOfDirectory(atPath: tmp)) ?? []
        #expect(files.isEmpty, "the kit left files in TMPDIR: \(files)")
        return r
    }

    @Test func shellExample() throws {
        let r = try Self.runKit(["/bin/bash", Self.root + "/contrib/examples/gmemfs-example.sh"])
        #expect(r.succeeded && r.output.hasSuffix("example passed\n"), "\(r) \(r.output)")
    }

    /// A failing check prints the daemon's log and still unmounts.
    @Test func shellKitUnmountsAndPrintsTheLogOnFailure() throws {
        let r = try Self.runKit(["/bin/bash", "-c", """
            set -e
            . '\(Self.root)/contrib/gmemfs-test.sh'
            gmemfs_up --file f:4K
            echo "$GMEMFS_DIR"
            test -e "$GMEMFS_MNT/missing"
            """])
        #expect(r.status == 1)
        #expect(r.stderr.contains("--- gmemfs log") && r.stderr.contains("mounted on"), "\(r)")
        let dir = r.output.trimmingCharacters(in: .newlines)
        #expect(dir.contains("/gmemfs-test.") && access(dir, F_OK) != 0, "directory \(dir) removed")
    }

    static var pytestAvailable: Bool {
        FUSE.isCI || ((try? run(["python3", "-c", "import pytest"]))?.succeeded ?? false)
    }

    @Test(.enabled(if: pytestAvailable)) func pytestExample() throws {
        let r = try Self.runKit(["python3", "-m", "pytest", "-q", "-p", "no:cacheprovider", Self.root + "/contrib/pytest"],
                                timeout: 120)
        #expect(r.succeeded && r.output.contains("5 passed"), "\(r) \(r.output)")
    }

    static var venvAvailable: Bool {
        FUSE.isCI || ((try? run(["python3", "-c", "import ensurepip, venv, pytest"]))?.succeeded ?? false)
    }

    /// What a pytest user does: `pip install` the repository's Python package (into a fresh venv
    /// that sees the system's pytest), then write `def test_x(gmemfs): ...` with its helpers, no
    /// conftest.py: the plugin comes from the package's pytest11 entry point.
    @Test(.enabled(if: venvAvailable)) func pipInstalledPackageRunsAnExample() throws {
        let work = try makeTemporaryDirectory("gmemfs-pip")
        defer { try? FileManager.default.removeItem(atPath: work) }
        let venv = try run(["python3", "-m", "venv", "--system-site-packages", work + "/venv"], timeout: 120)
        try #require(venv.succeeded, "\(venv)")
        // Offline: nothing to download (no dependencies; the build backend is in the package).
        let pip = try run([work + "/venv/bin/python", "-m", "pip", "install", "--quiet", "--no-index",
                           Self.root + "/python"], timeout: 120)
        try #require(pip.succeeded, "\(pip)")
        try FileManager.default.createDirectory(atPath: work + "/tests", withIntermediateDirectories: true)
        try """
            import errno
            import pytest
            from gmemfs_testing import P, ConversionError, abi, attributes, convert, pin

            def test_x(gmemfs):
                m = gmemfs("--file", "vm:64K:mmap,init-shared")
                vm = m.file("vm")
                with pin(vm, 0, P):
                    with pytest.raises(ConversionError) as e:
                        convert(vm, 0, 2 * P, "private", via="ioctl")
                    assert e.value.errno == errno.EAGAIN and e.value.error_offset == 0
                convert(vm, 0, 2 * P, "private")
                assert attributes(vm)[0] == (0, 2 * P, "private")
                assert abi.XATTR_SET_ATTRIBUTES == "user.gmem.set_attributes"
            """.write(toFile: work + "/tests/test_x.py", atomically: true, encoding: .utf8)
        let r = try Self.runKit([work + "/venv/bin/python", "-m", "pytest", "-q", "-p", "no:cacheprovider", work + "/tests"],
                                timeout: 120)
        #expect(r.succeeded && r.output.contains("1 passed"), "\(r) \(r.output)")
    }

    /// A mount that fails raises and leaves no directory in TMPDIR (runKit checks).
    @Test(.enabled(if: pytestAvailable)) func pytestFailedMountLeavesNoDirectory() throws {
        let tests = try makeTemporaryDirectory("gmemfs-pytest")
        defer { try? FileManager.default.removeItem(atPath: tests) }
        try """
            import pytest

            def test_bad_option(gmemfs):
                with pytest.raises(RuntimeError, match="did not mount"):
                    gmemfs("--file", "bad")
            """.write(toFile: tests + "/test_failed.py", atomically: true, encoding: .utf8)
        let r = try Self.runKit(["python3", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "gmemfs_testing.pytest_plugin",
                                 tests + "/test_failed.py"], environment: ["PYTHONPATH": Self.root + "/python"])
        #expect(r.succeeded && r.output.contains("1 passed"), "\(r) \(r.output)")
    }

    /// A runner killed with SIGKILL, or SIGTERM as a CI timeout sends, runs no trap or teardown:
    /// the daemon (started with --exit-with-parent) must unmount and exit, and the kit's directory
    /// must go, within seconds.
    ///
    /// `runner` sources a kit, mounts, writes "DAEMON-PID DIRECTORY" to `$STATE/ready` and waits;
    /// a process it leaves (its `sleep`) writes its pid to `$STATE/leftover`.
    /// `kitOwnsDirectory`: whether the directory must be gone too (a kit made it).
    static func killRunner(_ runner: [String], signal sig: Int32, kitOwnsDirectory: Bool = true) throws {
        let tmp = try makeTemporaryDirectory("gmemfs-test")
        let state = try makeTemporaryDirectory("gmemfs-state")
        defer {
            if let leftover = try? String(contentsOfFile: state + "/leftover", encoding: .utf8),
               let pid = Int32(leftover.trimmingCharacters(in: .whitespacesAndNewlines)) { kill(pid, SIGKILL) }
            let mounts = MountInfo.current() ?? []
            for m in mounts where m.mountPoint.hasPrefix(tmp + "/") { _ = try? run(["fusermount3", "-u", "-z", m.mountPoint]) }
            try? FileManager.default.removeItem(atPath: tmp)
            try? FileManager.default.removeItem(atPath: state)
        }
        // bash starts, kills and reaps the runner; it is spawned and reaped here with
        // posix_spawn and waitpid (Foundation's Process did not always notice its exit).
        let harness = """
            "$@" </dev/null >/dev/null 2>&1 &
            runner=$!
            for _ in $(seq 600); do [ -s "$STATE/ready" ] && break; kill -0 $runner 2>/dev/null || break; sleep 0.05; done
            [ -s "$STATE/ready" ] || { kill -KILL $runner; wait $runner; exit 1; }
            kill -\(sig) $runner
            wait $runner
            exit 0
            """
        let argv = ["/bin/bash", "-c", harness, "harness"] + runner
        let env = ProcessInfo.processInfo.environment.merging(
            ["GMEMFS": binDirectory() + "/gmemfs", "TMPDIR": tmp, "STATE": state, "PYTHONPATH": root + "/python"]) { $1 }.map { "\($0)=\($1)" }
        var cargv = argv.map { strdup($0) } + [nil]
        var cenv = env.map { strdup($0) } + [nil]
        defer { (cargv + cenv).forEach { free($0) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd in Int32(0)...2 { posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)      // the runner must be killable by SIGTERM
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        guard posix_spawn(&pid, argv[0], &actions, &attributes, &cargv, &cenv) == 0 else {
            Issue.record("posix_spawn failed")
            return
        }
        var status: Int32 = 0
        var reaped: pid_t = 0
        for _ in 0..<1200 where reaped == 0 {   // 60 s
            reaped = waitpid(pid, &status, WNOHANG)
            if reaped == 0 { usleep(50_000) }
        }
        if reaped == 0 { kill(pid, SIGKILL); waitpid(pid, &status, 0) }
        let ready = (try? String(contentsOfFile: state + "/ready", encoding: .utf8)) ?? ""
        let fields = ready.split(separator: " ").map { String($0.trimmingCharacters(in: .newlines)) }
        guard reaped == pid, status == 0, fields.count == 2, let daemon = Int32(fields[0]) else {
            Issue.record("the runner did not mount or was not killed (harness status \(status))")
            return
        }
        let directory = fields[1]
        func alive(_ pid: Int32) -> Bool {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            return !stat[stat.index(after: close)...].hasPrefix(" Z")
        }
        var (mounted, running, present) = (true, true, true)
        for _ in 0..<400 where mounted || running || present {   // 20 s
            mounted = GmemMount.isMounted(directory + "/mnt")
            running = alive(daemon)
            present = kitOwnsDirectory && access(directory, F_OK) == 0
            usleep(50_000)
        }
        #expect(!mounted, "the mount \(directory)/mnt is still there")
        #expect(!running, "the daemon \(daemon) still runs")
        #expect(!present, "the kit's directory \(directory) is still there")
        if running { kill(daemon, SIGKILL) }
    }

    @Test(arguments: [SIGKILL, SIGTERM]) func killedShellRunnerLeavesNothing(signal: Int32) throws {
        try Self.killRunner(["/bin/bash", "-c", """
            set -e
            . '\(Self.root)/contrib/gmemfs-test.sh'
            gmemfs_up --file f:4K
            sleep 600 &
            echo $! > "$STATE/leftover"
            echo "$GMEMFS_PID $GMEMFS_DIR" > "$STATE/ready"
            wait
            """], signal: signal)
    }

    /// In daemon mode the watched process is the one that ran gmemfs, not the daemon's own
    /// (short-lived) parent.
    @Test(arguments: [SIGKILL, SIGTERM]) func daemonModeExitsWithTheProcessThatRanIt(signal: Int32) throws {
        try Self.killRunner(["/bin/bash", "-c", """
            set -e
            d=$(mktemp -d "$TMPDIR/gmemfs-test.XXXXXX")
            mkdir "$d/mnt"
            "$GMEMFS" --exit-with-parent --pid-file "$d/pid" --file f:4K "$d/mnt"
            sleep 600 &
            echo $! > "$STATE/leftover"
            echo "$(cat "$d/pid") $d" > "$STATE/ready"
            wait
            """], signal: signal, kitOwnsDirectory: false)
    }

    @Test(.enabled(if: pytestAvailable), arguments: [SIGKILL, SIGTERM]) func killedPytestRunnerLeavesNothing(signal: Int32) throws {
        let tests = try makeTemporaryDirectory("gmemfs-pytest")
        defer { try? FileManager.default.removeItem(atPath: tests) }
        try """
            import os, time

            def test_sleeps(gmemfs):
                m = gmemfs("--file", "f:4K")
                with open(os.environ["STATE"] + "/ready", "w") as f:
                    f.write(f"{m.pid} {m.dir}")
                time.sleep(600)
            """.write(toFile: tests + "/test_killed.py", atomically: true, encoding: .utf8)
        try Self.killRunner(["/usr/bin/env", "python3", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "-p", "gmemfs_testing.pytest_plugin", tests + "/test_killed.py"],
                            signal: signal)
    }
}
