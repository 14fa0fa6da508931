import Foundation
import GmemABI
import GmemTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `gmemctl pin` and `gmemctl inject` against a real mount.
@Suite(.serialized, .enabled(if: FUSE.available))
struct GmemctlPinInjectTests {
    static func ctl(_ args: [String]) throws -> CommandResult { try GmemctlTests.ctl(args) }

    @Test func pinHoldsWhileTheCommandRunsAndPassesItsStatus() throws {
        let m = try GmemMount(["--file", "demo:64K:mmap,init-shared"])
        defer { m.unmount() }
        let f = m.file("demo")
        let ctl = GmemctlTests.gmemctl
        // Inside the command: the conversion is refused with the first pinned page.
        let inner = try Self.ctl(["pin", f, "4K", "8K", "--", ctl, "convert", "private", f, "0", "16K", "--ioctl"])
        #expect(inner.status == 1, "\(inner)")
        #expect(inner.stderr.contains("(error_offset 0x1000): EAGAIN"), "\(inner.stderr)")
        #expect(inner.stderr.contains("[0x1000, 0x3000) (2 pages) pinned"))
        #expect(inner.stderr.contains("unpinned"))
        #expect(stats(f)[.references] == "0")
        #expect(stats(f)[.eagainRefusals] == "1")
        try GmemctlJSONTests.check(["stats", "--json", f], "docs[0]['stats']['eagain_refusals'] == 1")
        #expect(attributes(f) == "0-10000 shared\n")
        // The command's exit status, and 128+N for a signal.
        #expect(try Self.ctl(["pin", f, "0", "4K", "--", "sh", "-c", "exit 7"]).status == 7)
        #expect(try Self.ctl(["pin", f, "0", "4K", "--", "sh", "-c", "kill -KILL $$"]).status == 128 + SIGKILL)
        // Afterwards nothing is held: the conversion goes through.
        #expect(try Self.ctl(["convert", "private", f, "0", "16K", "--ioctl"]).succeeded)
        // Bad input is refused before anything is sent; a private page cannot be pinned.
        #expect(try Self.ctl(["pin", f, "1", "4K"]).status == 64)
        #expect(try Self.ctl(["pin", f, "60K", "8K"]).status == 64)
        let onPrivate = try Self.ctl(["pin", f, "0", "4K", "--", "true"])
        #expect(onPrivate.status == 1 && onPrivate.stderr.contains("EFAULT"), "\(onPrivate)")
        #expect(stats(f)[.references] == "0")
    }

    /// SIGKILL of `gmemctl pin … -- COMMAND` takes COMMAND with it (it is tied to gmemctl with
    /// PR_SET_PDEATHSIG), and the reference goes with gmemctl's descriptor.
    @Test func killingPinEndsItsCommand() throws {
        let m = try GmemMount(["--file", "demo:64K:mmap,init-shared"])
        defer { m.unmount() }
        let f = m.file("demo")
        let dir = try makeTemporaryDirectory("gmemfs-pin")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = """
            "$1" pin "$2" 0 4K -- sh -c 'echo $$ > "$3/pid"; exec sleep 30' 2>/dev/null &
            ctl=$!
            for _ in $(seq 200); do [ -s "$3/pid" ] && break; sleep 0.05; done
            child=$(cat "$3/pid")
            kill -KILL $ctl; wait $ctl
            for _ in $(seq 100); do kill -0 "$child" 2>/dev/null || { echo gone; exit 0; }; sleep 0.05; done
            kill -KILL "$child"; echo alive
            """
        let r = try run(["/bin/bash", "-c", script, "test", GmemctlTests.gmemctl, f, dir])
        #expect(r.output == "gone\n", "\(r) \(r.output)")
        #expect(PageReferenceTests.awaitReferences(f, 0))
    }

    @Test func pinWithoutCommandHoldsUntilSigterm() throws {
        let m = try GmemMount(["--file", "demo:64K:mmap,init-shared"])
        defer { m.unmount() }
        let f = m.file("demo")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: GmemctlTests.gmemctl)
        p.arguments = ["pin", f, "8K", "4K"]
        p.standardError = FileHandle.nullDevice
        try p.run()
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() } }
        #expect(PageReferenceTests.awaitReferences(f, 1))
        #expect(throws: Errno.resourceBusy) { try convert(f, "0 64K private") }
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0 && p.terminationReason == .exit)
        #expect(stats(f)[.references] == "0")   // unpinned before exit, not at release
        try convert(f, "0 64K private")
    }

    @Test func injectArmsListsAndClears() throws {
        let m = try GmemMount(["--file", "demo:64K:mmap,init-shared"])
        defer { m.unmount() }
        let f = m.file("demo")
        let armed = try Self.ctl(["inject", "enomem", f, "--count", "2", "--range", "0", "8K"])
        #expect(armed.succeeded, "\(armed)")
        #expect(armed.output == "\(f): armed\n  enomem count 2 range 0x0 0x2000\n")
        #expect(try Self.ctl(["inject", "eagain", f, "0x3000"]).succeeded)
        let refused = try Self.ctl(["convert", "private", f, "0", "16K", "--ioctl"])
        #expect(refused.status == 1 && refused.stderr.contains("(error_offset 0x0): ENOMEM"), "\(refused)")
        // Outside enomem's range, eagain's page: EBUSY through the xattr.
        let busy = try Self.ctl(["convert", "private", f, "12K", "4K"])
        #expect(busy.status == 1 && busy.stderr.contains("EBUSY"), "\(busy)")
        #expect(try Self.ctl(["inject", "list", f]).output == "\(f): armed\n  enomem count 1 range 0x0 0x2000\n")
        #expect(try Self.ctl(["inject", "clear", f]).output == "\(f): nothing armed\n")
        #expect(try Self.ctl(["convert", "private", f, "0", "16K"]).succeeded)
        #expect(stats(f)[.injectedFailures] == "2")
        // stats --json carries the reference and injection counters, as numbers.
        try GmemctlJSONTests.check(["stats", "--json", f], """
            docs[0]["stats"]["injected_failures"] == 2 and docs[0]["stats"]["references"] == 0 \
            and docs[0]["stats"]["referenced_bytes"] == 0 and docs[0]["stats"]["eagain_refusals"] == 0
            """)
        #expect(attributes(f) == "0-4000 private\n4000-10000 shared\n")
        // Bad input: exit 64, nothing armed.
        for bad in [["eagain", f], ["eagain", f, "1"], ["eagain", f, "64K"], ["enomem", f, "--count", "0"],
                    ["enomem", f, "--range", "0"], ["enomem", f, "--range", "0", "4097"], ["eagain", f, "0", "--range", "0", "4K"],
                    ["clear", f, "--count", "2"]] {
            #expect(try Self.ctl(["inject"] + bad).status == 64, "\(bad)")
        }
        #expect(try Sys.getxattr(f, GmemXattr.inject) == "")
    }
}
