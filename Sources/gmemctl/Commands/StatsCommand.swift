import ArgumentParser
import GmemABI
import Foundation

/// `gmemctl stats FILE|MOUNTPOINT`: `user.gmem.stats`, with sizes made readable.
struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Show a file's counters, or a mount's (getxattr user.gmem.stats).")

    @Argument(help: "A gmem file or the mount point.", completion: .file()) var path: String
    @Flag(help: ArgumentHelp("Print one JSON object: {path, stats: {NAME: number}, files: [{name, size, shared_bytes, private_bytes, ranges}]} (files only for a mount point).")) var json = false

    func run() throws {
        _ = try GmemPath(path, .fileOrMountRoot)
        let pairs = GmemStats(parsing: try Xattr.get(path, GmemXattr.stats)).pairs
        if json { return print(try JSONOutput.line(jsonStats(pairs))) }
        print(path)
        let width = (pairs.map(\.key.count).max() ?? 0) + 2
        for (key, value) in pairs {
            var shown = value
            let known = GmemStatsKey.file.first { $0.name == key } ?? GmemStatsKey.root.first { $0.name == key }
            if let known, known.isByteCount, let n = UInt64(value) {
                shown = n >= 1024 ? "\(Units.human(n)) (\(n) bytes)" : "\(n) bytes"
                if known == .size { shown += ", \(n / 4096) pages" }
            }
            print("  " + key.padding(toLength: width, withPad: " ", startingAt: 0) + shown)
        }
        // On a mount point, one line per file.
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: path))?.filter { !$0.hasPrefix(".") }.sorted() ?? []
            for name in names {
                let file = (path as NSString).appendingPathComponent(name)
                guard let map = try? AttributeMap.read(file) else { continue }
                print("  \(name): \(Units.human(map.fileSize)), \(Units.human(map.sharedBytes)) shared, \(Units.human(map.privateBytes)) private, \(map.ranges.count) ranges")
            }
        }
    }

    func jsonStats(_ pairs: [(key: String, value: String)]) throws -> JSONOutput.StatsJSON {
        // `max_memory=none` (no cap) is null: the field is a number when there is one.
        var out = JSONOutput.StatsJSON(path: path, stats: Dictionary(pairs.map {
            ($0.key, $0.key == "max_memory" && $0.value == "none" ? .null : JSONOutput.Value($0.value))
        }) { $1 })
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: path))?.filter { !$0.hasPrefix(".") }.sorted() ?? []
            out.files = names.compactMap { name in
                guard let map = try? AttributeMap.read((path as NSString).appendingPathComponent(name)) else { return nil }
                return JSONOutput.FileSummary(name: name, size: map.fileSize, sharedBytes: map.sharedBytes,
                                              privateBytes: map.privateBytes, ranges: map.ranges.count)
            }
        }
        return out
    }
}
