import ArgumentParser
import Glibc
import Foundation
import GmemABI
import LinuxMounts

/// `gmemctl watch FILE [--interval S] [--count N]`: redraws the map whenever it changes.
struct WatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Redraw a file's map whenever it changes (Ctrl-C to stop).")

    @Argument(help: "The gmem file.", completion: .file()) var file: String
    @Option(parsing: .unconditional, help: "Seconds between polls (more than 0, at most 3600).") var interval: Double = 0.5
    @Option(help: "Stop after this many drawings (default: never).") var count: Int?
    @Option(help: "auto, always, never.") var color: ColorChoice = .auto
    @Flag(help: ArgumentHelp("Print one line of JSON per change (the first map included), as 'map --json' prints.")) var json = false

    func validate() throws {
        guard interval > 0, interval <= 3600 else { throw ValidationError("--interval must be more than 0 and at most 3600 seconds") }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
    }

    func run() throws {
        _ = try GmemPath(file, .file)
        // The mount the file is on: once it is unmounted the watch ends (status 0), instead of
        // reporting the file as missing.
        let resolved = realpath(file, nil).map { p in defer { free(p) }; return String(cString: p) }
        let mountPoint = resolved.flatMap { MountInfo.mount(containing: $0, in: MountInfo.current() ?? []) }?.mountPoint
        func unmounted() -> Bool {
            guard let mountPoint else { return false }
            return MountInfo.mount(at: mountPoint, in: MountInfo.current() ?? [])?.fileSystemType != GmemFileSystem.type
        }
        let terminal = Terminal.stdout(color: color)
        var last: AttributeMap?
        var drawn = 0
        while true {
            let map: AttributeMap
            do { map = try AttributeMap.read(file) } catch {
                guard unmounted() else { throw error }
                FileHandle.standardError.write(Data("gmemctl: \(mountPoint ?? file) was unmounted; the watch ends\n".utf8))
                return
            }
            if map != last, json {
                print(try JSONOutput.line(JSONOutput.MapJSON(map)))
                flushOutput()
                last = map
                drawn += 1
                if let count, drawn >= count { return }
            } else if map != last {
                let renderer = MapRenderer(terminal: Terminal(color: terminal.color, width: Terminal.columns()), maxRows: 16)
                if terminal.color { print("\u{1B}[H\u{1B}[2J", terminator: "") }   // home + clear
                print(renderer.picture(map), terminator: "")
                print(renderer.table(map))
                flushOutput()
                last = map
                drawn += 1
                if let count, drawn >= count { return }
            }
            // interval is in (0, 3600]: the conversion cannot trap.
            var delay = timespec(tv_sec: Int(interval), tv_nsec: Int((interval - interval.rounded(.down)) * 1e9))
            var left = timespec()
            while nanosleep(&delay, &left) != 0 && errno == EINTR { delay = left }
        }
    }
}
