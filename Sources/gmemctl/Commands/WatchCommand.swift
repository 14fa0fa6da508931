import ArgumentParser
import Glibc

/// `gmemctl watch FILE [--interval S] [--count N]`: redraws the map whenever it changes.
struct WatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Redraw a file's map whenever it changes (Ctrl-C to stop).")

    @Argument(help: "The gmem file.") var file: String
    @Option(help: "Seconds between polls.") var interval: Double = 0.5
    @Option(help: "Stop after this many drawings (default: never).") var count: Int?
    @Option(help: "auto, always, never.") var color: ColorChoice = .auto

    func validate() throws {
        guard interval > 0 else { throw ValidationError("--interval must be positive") }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
    }

    func run() throws {
        let terminal = Terminal.stdout(color: color)
        var last: AttributeMap?
        var drawn = 0
        while true {
            let map = try AttributeMap.read(file)
            if map != last {
                let renderer = MapRenderer(terminal: Terminal(color: terminal.color, width: Terminal.columns()), maxRows: 16)
                if terminal.color { print("\u{1B}[H\u{1B}[2J", terminator: "") }   // home + clear
                print(renderer.picture(map), terminator: "")
                print(renderer.table(map))
                flushOutput()
                last = map
                drawn += 1
                if let count, drawn >= count { return }
            }
            usleep(useconds_t(interval * 1_000_000))
        }
    }
}
