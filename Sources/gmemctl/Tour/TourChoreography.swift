import ArgumentParser
import Foundation
import Glibc
import GmemABI

/// The tour's steps that need more than one process: a real KVM guest, a mapping revoked
/// under its holder, and the trace of both.
extension Tour {
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
