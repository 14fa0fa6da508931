import ArgumentParser
import Foundation
import Glibc
import GmemABI

/// `gmemctl tour [MOUNTPOINT] [--no-pause]`: a guided demo of guest_memfd's private/shared
/// model for someone who has never heard of it. Every step explains itself, shows the exact
/// shell command, runs it, shows its real output and the file's map, and checks the outcome
/// against what the kernel's guest_memfd does. Exits non-zero if any step behaved differently.
struct TourCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tour",
        abstract: "A guided, self-checking demo of private and shared guest memory.",
        discussion: """
            Without MOUNTPOINT the tour mounts its own gmemfs (--guest-view, auto_unmount) on a
            temporary directory and always unmounts it at the end. With MOUNTPOINT it uses a
            running gmemfs mounted with --guest-view, and removes its demo file afterwards.
            """)

    @Argument(help: "A gmemfs mounted with --guest-view (default: mount a private one).", completion: .directory) var mountpoint: String?
    @Flag(name: .customLong("no-pause"), help: "Do not wait for Enter between steps.") var noPause = false
    @Option(help: "auto, always, never.") var color: ColorChoice = .auto

    func run() throws {
        // SIGBUS is the point of two steps: no core files for them.
        var noCore = rlimit(rlim_cur: 0, rlim_max: 0)
        getrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &noCore); noCore.rlim_cur = 0
        setrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &noCore)

        if let mountpoint { _ = try GmemPath(mountpoint, .mountRoot) }
        var own: TourMount?
        if mountpoint == nil {
            TourMount.installCleanup()
            own = try TourMount()
        }
        defer { own?.unmount() }
        let mnt = mountpoint ?? own!.mountpoint
        var tour = try Tour(mountpoint: mnt, terminal: .stdout(color: color),
                            pause: !noPause && isatty(STDIN_FILENO) == 1, ownMount: own != nil)
        let ok = tour.run()
        if !ok { throw ExitCode.failure }
    }
}

/// What a command must do for its step to count as "behaved as expected".
enum Expectation {
    case succeeds(printing: String? = nil)
    case fails(printing: String)
    case killedBy(Int32)

    var summary: String {
        switch self {
        case .succeeds(let p): p.map { "succeed and print \"\($0)\"" } ?? "succeed"
        case .fails(let p): "fail with \"\(p)\""
        case .killedBy(let s): "be killed by \(s == SIGBUS ? "SIGBUS" : "signal \(s)")"
        }
    }

    func check(_ r: Shell.Result) -> Bool {
        switch self {
        case .succeeds(let p): r.status == 0 && r.signal == nil && (p.map { r.output.contains($0) } ?? true)
        case .fails(let p): r.status != 0 && r.signal == nil && r.output.contains(p)
        case .killedBy(let s): r.signal == s
        }
    }
}

struct Tour {
    let mountpoint: String
    let terminal: Terminal
    let pause: Bool
    let ownMount: Bool
    let name: String
    let shell: Shell
    var failures: [String] = []
    var stepNumber = 0

    init(mountpoint: String, terminal: Terminal, pause: Bool, ownMount: Bool) throws {
        self.mountpoint = mountpoint; self.terminal = terminal; self.pause = pause; self.ownMount = ownMount
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: mountpoint + "/.guest", isDirectory: &isDir), isDir.boolValue else {
            throw Failure("\(mountpoint) has no .guest directory: the tour needs a gmemfs mounted with --guest-view")
        }
        name = FileManager.default.fileExists(atPath: mountpoint + "/demo") ? "demo-\(getpid())" : "demo"
        // Child shells find this gmemctl first on PATH, and see MNT.
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var env = ProcessInfo.processInfo.environment
        env["PATH"] = (exe as NSString).deletingLastPathComponent + ":" + (env["PATH"] ?? "/usr/bin:/bin")
        env["MNT"] = mountpoint
        env["LC_ALL"] = "C"
        shell = Shell(environment: env)
    }

    var file: String { "\"$MNT/\(name)\"" }
    var guestFile: String { "\"$MNT/.guest/\(name)\"" }

    // MARK: - Output

    func say(_ text: String) { print(text); flushOutput() }

    mutating func heading(_ title: String) {
        stepNumber += 1
        say("\n" + terminal.bold(terminal.paint("── Step \(stepNumber): \(title) ", "36")) + terminal.dim(String(repeating: "─", count: max(0, min(terminal.width, 78) - title.count - 14))))
    }

    func explain(_ text: String) {
        say(text.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(separator: "\n"))
    }

    func prompt(_ command: String) { say(terminal.bold("$ " + command)) }

    func waitForEnter() {
        guard pause else { return }
        print(terminal.dim("  [Enter: next step]"), terminator: "")
        flushOutput()
        _ = readLine()
    }

    /// Runs `command` as shown, prints its output, and checks it.
    @discardableResult
    mutating func run(_ command: String, expect: Expectation) -> Shell.Result? {
        prompt(command)
        let result: Shell.Result
        do { result = try shell.run(command) } catch {
            fail("could not run \(command): \(error)")
            return nil
        }
        if !result.output.isEmpty { print(result.output, terminator: result.output.hasSuffix("\n") ? "" : "\n") }
        if let s = result.signal { say(terminal.paint("[killed by \(s == SIGBUS ? "SIGBUS (Bus error)" : "signal \(s)")]", "35")) }
        else if result.status != 0 { say(terminal.dim("[exit status \(result.status)]")) }
        if !expect.check(result) { fail("`\(command)` should \(expect.summary)") }
        return result
    }

    mutating func fail(_ message: String) {
        failures.append("step \(stepNumber): \(message)")
        say(terminal.paint("  ✗ unexpected: \(message)", "1;31"))
    }

    /// Draws the file's map and checks it is `expected` (the xattr text).
    mutating func showMap(expect expected: String) {
        do {
            let map = try AttributeMap.read(mountpoint + "/" + name)
            say("")
            print(MapRenderer(terminal: terminal).picture(map, title: "map of \(name)").split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
            if map.text != expected {
                fail("the map should be \(expected.debugDescription), is \(map.text.debugDescription)")
            }
        } catch {
            fail("cannot read the map: \(error)")
        }
    }

    // MARK: - The tour

    mutating func run() -> Bool {
        say(terminal.bold("gmemctl tour: private and shared guest memory in ten minutes"))
        explain("""

            A confidential VM (SEV-SNP, TDX, pKVM) gets its RAM from a guest_memfd: a file whose
            pages are each PRIVATE (only the guest may touch them; the host, that is the VMM and
            you, is refused) or SHARED (the host may read, write and mmap them, e.g. for I/O
            buffers). The guest asks for pages to switch; the VMM switches them with the
            KVM_SET_MEMORY_ATTRIBUTES2 ioctl, and the contents stay in place.

            gmemfs plays guest_memfd in userspace. Its files behave like the kernel's, and
            $MNT/.guest/NAME plays the guest: it sees every page, whatever its attributes.

            Every command below is run for real, exactly as shown, with
              MNT=\(mountpoint)\(ownMount ? "   (a gmemfs mounted just for this tour)" : "")
            and this gmemctl first on PATH. You can type them yourself in another terminal.
            """)
        waitForEnter()

        heading("create a guest_memfd file")
        explain("""
            Like KVM_CREATE_GUEST_MEMFD: a fixed size (64 KiB = 16 pages of 4 KiB) and flags.
            'mmap' lets the host map the file. Under the hood this is one extended attribute:
              setfattr -n \(GmemXattr.create) -v "\(name) 64K mmap" "$MNT"
            """)
        run("gmemctl create \"$MNT\" \(name) 64K --flags mmap", expect: .succeeds())
        run("ls -l \(file)", expect: .succeeds(printing: "65536"))
        showMap(expect: "0-10000 private\n")
        explain("Every page starts private: this memory belongs to the guest.")
        waitForEnter()

        heading("the host cannot read private memory")
        explain("Reading a private page fails with EACCES (Permission denied).")
        run("cat \(file)", expect: .fails(printing: "Permission denied"))
        showMap(expect: "0-10000 private\n")
        waitForEnter()

        heading("convert the first 16 KiB to shared")
        explain("""
            The VMM shares a range, e.g. for a virtio ring. gmemctl sets one xattr:
              setfattr -n \(GmemXattr.setAttributes) -v "0 16K shared" "$MNT/\(name)"
            Offsets and sizes must be multiples of 4096.
            """)
        run("gmemctl convert shared \(file) 0 16K", expect: .succeeds())
        showMap(expect: "0-4000 shared\n4000-10000 private\n")
        waitForEnter()

        heading("the host writes and reads shared memory")
        explain("Shared pages are ordinary file contents for the host: dd, cat, mmap all work.")
        run("printf 'hello from the host' | dd of=\(file) conv=notrunc status=none", expect: .succeeds())
        run("head -c 19 \(file); echo", expect: .succeeds(printing: "hello from the host"))
        showMap(expect: "0-4000 shared\n4000-10000 private\n")
        waitForEnter()

        heading("the guest writes a secret into a private page")
        explain("""
            Page 8 (offset 32K) is private. The guest writes there through its own view,
            which ignores attributes.
            """)
        run("printf 'the secret' | dd of=\(guestFile) bs=4096 seek=8 conv=notrunc status=none", expect: .succeeds())
        showMap(expect: "0-4000 shared\n4000-10000 private\n")
        waitForEnter()

        heading("the host can neither read nor map it")
        explain("""
            read() of the private page: EACCES. mmap() itself succeeds, but touching the page
            faults, and the kernel answers a fault on private memory with SIGBUS. gmemctl peek
            maps the file with MAP_SHARED and reads bytes, as a VMM would; it dies by SIGBUS.
            """)
        run("dd if=\(file) bs=4096 skip=8 count=1 status=none", expect: .fails(printing: "Permission denied"))
        run("gmemctl peek \(file) 32K --count 10", expect: .killedBy(SIGBUS))
        showMap(expect: "0-4000 shared\n4000-10000 private\n")
        waitForEnter()

        heading("convert the page to shared: the secret appears")
        explain("""
            This time with the kernel's own ioctl, KVM_SET_MEMORY_ATTRIBUTES2 (--ioctl).
            Conversion is in place: no copy, no zeroing, so what the guest wrote is now
            visible to the host, through read() and through a mapping.
            """)
        run("gmemctl convert shared --ioctl \(file) 32K 4K", expect: .succeeds())
        run("dd if=\(file) bs=1 skip=32K count=10 status=none; echo", expect: .succeeds(printing: "the secret"))
        run("gmemctl peek \(file) 32K --count 10", expect: .succeeds(printing: "the secret"))
        showMap(expect: "0-4000 shared\n4000-8000 private\n8000-9000 shared\n9000-10000 private\n")
        waitForEnter()

        heading("converting back to private revokes existing mappings")
        explain("""
            A process that mapped the page while it was shared keeps no access once it turns
            private: the conversion zaps every mapping, in every process. Here a peek holds a
            mapping (think: terminal 1), we convert (terminal 2), and its next read faults.
            """)
        revokeMapping()
        run("dd if=\(guestFile) bs=1 skip=32K count=10 status=none; echo", expect: .succeeds(printing: "the secret"))
        explain("The guest still has its data: conversions never touch contents.")
        showMap(expect: "0-4000 shared\n4000-10000 private\n")
        waitForEnter()

        heading("under the hood")
        explain("""
            gmemctl only uses what any program can: the user.gmem.* extended attributes and
            the ioctl. The map as text (hex byte offsets, end exclusive), then the counters:
            """)
        run("getfattr --absolute-names --only-values -n \(GmemXattr.attributes) \(file)", expect: .succeeds(printing: "0-4000 shared\n4000-10000 private"))
        run("gmemctl stats \(file)", expect: .succeeds(printing: "conversions"))
        explain("""

            Try next: gmemctl map --svg map.svg FILE, gmemctl watch FILE while you convert
            in another terminal, and docs/tutorial.md for what each step maps to in the kernel.
            """)

        waitForEnter()
        realGuest()

        if !ownMount {
            // Leave the user's mount as we found it.
            _ = try? shell.run("rm -f \(file) \(vmFile)")
        }
        say("")
        if failures.isEmpty {
            say(terminal.paint("✓ all \(stepNumber) steps behaved as the kernel's guest_memfd does.", "1;32"))
            if ownMount { say(terminal.dim("  (unmounting \(mountpoint))")) }
            return true
        }
        say(terminal.paint("✗ \(failures.count) check(s) behaved differently:", "1;31"))
        for f in failures { say("  - " + f) }
        return false
    }

    var vmName: String { name == "demo" ? "vm" : "vm-\(getpid())" }
    var vmFile: String { "\"$MNT/\(vmName)\"" }

    /// The last step: docs/examples/confidential_vm.c, a real KVM guest whose memslot is a
    /// MAP_SHARED mapping of `.guest/NAME`, compiled with `cc` and run where a one-instruction
    /// probe guest halts; elsewhere one line says why not (not a failure: no guest is faked).
    mutating func realGuest() {
        heading("a real KVM guest on this memory")
        let dir = NSTemporaryDirectory() + "gmem-tour-vm-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let binary = dir + "/confidential_vm"
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try (ExampleVM.source + "\n").write(toFile: binary + ".c", atomically: true, encoding: .utf8)
        } catch {
            return fail("could not write the example VM's source to \(dir): \(error)")
        }
        let compile = "cc -o \(binary) \(binary).c"
        let cc = try? shell.run(compile, timeout: 120)
        guard let cc, cc.status == 0 else {
            return say(terminal.dim("  skipped: the example VM (docs/examples/confidential_vm.c) needs a C compiler, and `cc` \(cc == nil ? "did not run" : "failed")."))
        }
        let probe = try? shell.run("\(binary) --probe")
        guard let probe, probe.status == 0, probe.signal == nil else {
            let why = probe?.output.split(separator: "\n").last.map(String.init) ?? "the probe did not run"
            return say(terminal.dim("  skipped: KVM cannot run a guest on this machine (\(why))."))
        }
        explain("""
            Everything so far played the guest with $MNT/.guest/NAME. Here a real one runs:
            docs/examples/confidential_vm.c (built into gmemctl, compiled with cc just now)
            creates \(vmName), maps $MNT/.guest/\(vmName) as the VM's memory (a KVM memslot) and
            runs a real-mode guest that stores a secret into a private page, reads it back and
            writes it to an I/O port. The host then tries that page through $MNT/\(vmName), and
            converts it to shared in place.
            """)
        prompt(compile)
        run("\(binary) \"$MNT\" \(vmName)", expect: .succeeds(printing: "host reads through its mapping: hunter2"))
        explain("The guest's own stores reached the host only through the conversion.")
    }

    /// Step 8's two-terminal dance: a `peek --hold` child maps and reads the shared page, the
    /// page is converted to private, then the child reads again and must die by SIGBUS.
    mutating func revokeMapping() {
        // Terminal 3 watches the events (the trace is the daemon's user's; on someone else's
        // mount it may stay silent, which only the tour's own mount counts as a failure).
        let tracer = "gmemctl trace \(file)"
        prompt(tracer + "                       " + terminal.dim("# terminal 3: watch what happens"))
        let (t, traceOut) = shell.process(tracer)
        t.standardInput = FileHandle.nullDevice
        let tracing = (try? t.run()) != nil
        try? traceOut.fileHandleForWriting.close()
        defer {
            if tracing {
                if t.isRunning { kill(t.processIdentifier, SIGKILL) }
                t.waitUntilExit()
            }
        }
        usleep(300_000)   // until it has the trace open
        let holder = "gmemctl peek --hold \(file) 32K --count 10"
        prompt(holder + "        " + terminal.dim("# terminal 1: map, read, keep the mapping"))
        let (p, out) = shell.process(holder)
        let input = Pipe()
        p.standardInput = input
        do { try p.run() } catch { return fail("could not start \(holder): \(error)") }
        try? out.fileHandleForWriting.close()
        let fd = out.fileHandleForReading.fileDescriptor
        var transcript = ""
        defer {
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            p.waitUntilExit()
        }
        // The first read (the page is shared) and the "holding" note.
        for _ in 0..<2 {
            guard let line = Shell.readLine(fd, until: Date().addingTimeInterval(15)) else { break }
            say(line)
            transcript += line + "\n"
        }
        if !transcript.contains("the secret") { fail("the holder should first read \"the secret\"") }
        run("gmemctl convert private \(file) 32K 4K" , expect: .succeeds())
        say(terminal.bold("⏎") + "        " + terminal.dim("# terminal 1: press Enter, peek reads its old mapping again"))
        input.fileHandleForWriting.write(Data("\n".utf8))
        try? input.fileHandleForWriting.close()
        let rest = Shell.readAll(fd, until: Date().addingTimeInterval(15))
        if !rest.isEmpty { print(rest, terminator: rest.hasSuffix("\n") ? "" : "\n") }
        let deadline = Date().addingTimeInterval(15)
        while p.isRunning && Date() < deadline { usleep(5_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        let r = Shell.result(p, transcript + rest)
        if let s = r.signal { say(terminal.paint("[killed by \(s == SIGBUS ? "SIGBUS (Bus error)" : "signal \(s)")]", "35")) }
        if r.signal != SIGBUS { fail("the holder's second read should be killed by SIGBUS (status \(r.status), signal \(r.signal.map(String.init) ?? "none"))") }
        showTrace(tracing ? Shell.readAll(traceOut.fileHandleForReading.fileDescriptor, until: Date().addingTimeInterval(0.5)) : "",
                  holder: p.processIdentifier)
    }

    /// Terminal 3's view of step 8: the conversion, its invalidation, and the holder's refused
    /// READ (its page fault) under the holder's own pid.
    mutating func showTrace(_ text: String, holder pid: pid_t) {
        say(terminal.dim("  terminal 3 meanwhile (one line per event):"))
        let lines = text.split(separator: "\n").map(String.init)
        for line in lines { say(line) }
        // The lines are `gmemctl trace`'s columns: words, with the kinds and outcomes of GmemABI.
        let words = lines.map { Set($0.split(separator: " ").map(String.init)) }
        let converted = words.contains { $0.contains(GmemTraceKind.convert.rawValue) && $0.contains(GmemTraceOutcome.becamePrivate.rawValue) }
        let refused = words.contains {
            $0.contains(GmemTraceKind.readRefused.rawValue) && $0.contains(String(pid)) && $0.contains(GmemErrnoName.symbol(EACCES))
        }
        if converted && refused {
            explain("""
                The conversion (became-private) invalidated the page first: the kernel unmapped
                it from every process. The holder's next read faulted, the fault's READ was
                refused (read-refused, EACCES, pid \(pid): the peek), and the kernel turned
                that into SIGBUS.
                """)
        } else if ownMount {
            fail("the trace should show the to-private conversion and the holder's (pid \(pid)) refused read")
        }
    }
}
