import Foundation

/// Draws an ``AttributeMap`` for a terminal: a bar of the whole file, a scale, a legend and a
/// table of ranges. Colour is never the only cue: with colour the bar uses `█` (private, red),
/// `░` (shared, green) and `▒` (a cell holding both, yellow); without colour (not a TTY,
/// `NO_COLOR`, `--color never`) `#` (private), `.` (shared) and `%` (both). The legend names
/// each glyph and the table names each range's attribute.
struct MapRenderer {
    var terminal: Terminal
    /// Table rows to print at most (0: all).
    var maxRows = 32

    enum Cell: UInt8 { case shared = 1, `private` = 2, mixed = 3 }

    /// Classifies `count` equal cells spanning the file: a cell is mixed when it overlaps both
    /// private and shared pages. O(ranges + count).
    static func cells(of map: AttributeMap, count: Int) -> [Cell] {
        let pages = max(map.pageCount, 1)
        let c = UInt64(count)
        var bits = [UInt8](repeating: 0, count: count)
        for r in map.ranges {
            let a = r.start / 4096, b = (r.end + 4095) / 4096
            // Cell i covers the page interval [i*pages/c, (i+1)*pages/c) (real numbers).
            let first = mulDiv(a, c, pages)
            let last = min(c - 1, mulDivUp(b, c, pages) - 1)
            guard first <= last else { continue }
            for i in Int(first)...Int(last) { bits[i] |= r.isPrivate ? Cell.private.rawValue : Cell.shared.rawValue }
        }
        return bits.map { Cell(rawValue: $0) ?? .private }
    }

    static func mulDiv(_ a: UInt64, _ b: UInt64, _ d: UInt64) -> UInt64 {
        let p = a.multipliedFullWidth(by: b)
        return d.dividingFullWidth((p.high, p.low)).quotient
    }
    static func mulDivUp(_ a: UInt64, _ b: UInt64, _ d: UInt64) -> UInt64 {
        let p = a.multipliedFullWidth(by: b)
        let (q, r) = d.dividingFullWidth((p.high, p.low))
        return r == 0 ? q : q + 1
    }

    /// How many cells the bar has within `width` columns: a whole number of cells per page when
    /// pages are few, one cell per column otherwise.
    static func barWidth(pages: UInt64, available: Int) -> Int {
        let avail = max(available, 8)
        guard pages > 0, pages <= UInt64(avail) else { return avail }
        return Int(pages) * (avail / Int(pages))
    }

    /// The character of a cell: a shape that differs per attribute, with or without colour.
    func character(_ cell: Cell) -> String {
        switch (cell, terminal.color) {
        case (.private, true): return "█"
        case (.shared, true): return "░"
        case (.mixed, true): return "▒"
        case (.private, false): return "#"
        case (.shared, false): return "."
        case (.mixed, false): return "%"
        }
    }

    /// The character with its colour (red private, green shared, yellow both), when colour is on.
    func glyph(_ cell: Cell) -> String {
        switch cell {
        case .private: return terminal.sgr("31") + character(cell)
        case .shared: return terminal.sgr("32") + character(cell)
        case .mixed: return terminal.sgr("33") + character(cell)
        }
    }

    func bar(_ map: AttributeMap, width: Int) -> String {
        var s = ""
        var previous: Cell?
        for cell in Self.cells(of: map, count: width) {
            // Repeat the colour code only where it changes.
            if terminal.color && cell == previous { s += character(cell) } else { s += glyph(cell) }
            previous = cell
        }
        return s + terminal.reset
    }

    /// The bar with its scale and legend (what `watch` and the tour draw).
    func picture(_ map: AttributeMap, title: String? = nil) -> String {
        let width = Self.barWidth(pages: map.pageCount, available: terminal.width - 4)
        var out = ""
        let summary = "\(Units.human(map.fileSize)), \(map.pageCount) pages, \(map.ranges.count) range\(map.ranges.count == 1 ? "" : "s"): "
            + "\(Units.human(map.sharedBytes)) shared, \(Units.human(map.privateBytes)) private"
        out += terminal.bold(title ?? map.path) + "  " + summary + "\n"
        out += "  " + bar(map, width: width) + "\n"
        let left = "0", right = Units.human(map.fileSize)
        let mid = map.fileSize >= 8192 ? Units.human(map.fileSize / 2) : ""
        var scale = [Character](repeating: " ", count: max(width, left.count + right.count + mid.count + 2))
        for (i, ch) in left.enumerated() { scale[i] = ch }
        if !mid.isEmpty, width / 2 - mid.count / 2 > left.count + 1 {
            for (i, ch) in mid.enumerated() { scale[width / 2 - mid.count / 2 + i] = ch }
        }
        for (i, ch) in right.enumerated() { scale[scale.count - right.count + i] = ch }
        out += "  " + terminal.dim(String(scale)) + "\n"
        let perCell = map.fileSize / UInt64(max(width, 1))
        let cellNote = perCell >= 4096 ? "one cell ≈ \(Units.human(perCell))" : "one page = \(width / Int(max(map.pageCount, 1))) cells"
        out += "  " + glyph(.shared) + terminal.reset + " shared (host may read/write/mmap)   "
            + glyph(.private) + terminal.reset + " private (guest only)   "
            + glyph(.mixed) + terminal.reset + " both   " + terminal.dim("(\(cellNote))") + "\n"
        return out
    }

    /// The range table: START END SIZE ATTRIBUTE (hex offsets as in the xattr, END exclusive).
    func table(_ map: AttributeMap) -> String {
        let rows = maxRows == 0 ? map.ranges[...] : map.ranges.prefix(maxRows)
        let cols = rows.map { [Units.hex($0.start), Units.hex($0.end), Units.human($0.size), $0.name] }
        let header = ["START", "END", "SIZE", "ATTRIBUTE"]
        var widths = header.map(\.count)
        for c in cols { for i in 0..<4 { widths[i] = max(widths[i], c[i].count) } }
        func line(_ c: [String], paint: Bool) -> String {
            var s = "  "
            for i in 0..<4 {
                let pad = String(repeating: " ", count: widths[i] - c[i].count)
                s += i == 3 ? c[i] : (i == 2 ? pad + c[i] : c[i] + pad) + "  "
            }
            if paint { s = terminal.paint(s, c[3] == "private" ? "31" : "32") }
            return s + "\n"
        }
        var out = terminal.bold(line(header, paint: false).dropLast() + "") + "\n"
        for c in cols { out += line(c, paint: true) }
        if rows.count < map.ranges.count {
            out += "  … and \(map.ranges.count - rows.count) more ranges (--rows 0 lists all)\n"
        }
        return out
    }
}
