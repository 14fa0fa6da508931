import ArgumentParser
import Foundation
import Glibc
import GmemABI

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
        var env = ProcessInfo.processInfo.environment
        env["PATH"] = Executables.directory + ":" + (env["PATH"] ?? "/usr/bin:/bin")
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
}
