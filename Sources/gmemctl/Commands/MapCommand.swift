import ArgumentParser
import Foundation

/// `gmemctl map FILE [--svg OUT]`: the private/shared picture of a file.
struct MapCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "map",
        abstract: "Draw a file's private/shared map: a bar of the whole file and the range table.")

    @Argument(help: "The gmem file.", completion: .file()) var file: String
    @Option(help: ArgumentHelp("Also write the picture as SVG to this path.", valueName: "OUT"), completion: .file(extensions: ["svg"])) var svg: String?
    @Option(help: "Table rows to print at most (0: all).") var rows = 32
    @Option(help: "auto (colour on a TTY unless NO_COLOR is set), always, never.") var color: ColorChoice = .auto
    @Flag(help: ArgumentHelp("Print one JSON object instead: {path, size, shared_bytes, private_bytes, ranges: [{offset, size, end, attribute}]}, byte numbers; END exclusive.")) var json = false

    func validate() throws {
        guard rows >= 0 else { throw ValidationError("--rows must be 0 (all) or positive") }
        // Checked before anything is printed: a map followed by a failure misleads.
        if let svg {
            let directory = (svg as NSString).deletingLastPathComponent
            let dir = directory.isEmpty ? "." : directory
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ValidationError("--svg \(svg): the directory \(dir) does not exist")
            }
            guard access(dir, W_OK) == 0 else { throw ValidationError("--svg \(svg): cannot write in \(dir)") }
        }
    }

    func run() throws {
        _ = try GmemPath(file, .file)
        let map = try AttributeMap.read(file)
        if json {
            print(try JSONOutput.line(JSONOutput.MapJSON(map)))
            if let svg { try writeSVG(map, to: svg) }
            return
        }
        let renderer = MapRenderer(terminal: .stdout(color: color), maxRows: rows)
        print(renderer.picture(map), terminator: "")
        print()
        print(renderer.table(map), terminator: "")
        if let svg {
            try writeSVG(map, to: svg)
            print("wrote \(svg)")
        }
    }

    func writeSVG(_ map: AttributeMap, to svg: String) throws {
        let title = (file as NSString).lastPathComponent
        do {
            try SVGRenderer.render(map, title: title).write(toFile: svg, atomically: true, encoding: .utf8)
        } catch {
            throw Failure("cannot write \(svg): \(error.localizedDescription)")
        }
    }
}

extension ColorChoice: ExpressibleByArgument {}
