import Foundation

/// Draws an ``AttributeMap`` as a standalone SVG picture: a title, the bar of the whole file
/// (page grid when pages are few), a scale and a legend.
enum SVGRenderer {
    static let privateColor = "#d64545"
    static let sharedColor = "#3fa34d"
    static let mixedColor = "#e0b030"

    /// The fill of a cell: shared cells are hatched and mixed ones cross-hatched, so the
    /// picture does not tell the attributes apart by colour alone.
    static func fill(_ cell: MapRenderer.Cell) -> String {
        switch cell {
        case .private: return privateColor
        case .shared: return "url(#shared)"
        case .mixed: return "url(#mixed)"
        }
    }

    static func render(_ map: AttributeMap, title: String) -> String {
        let width = 880, barX = 40, barY = 64, barW = 800, barH = 56
        // One cell per pixel column at most; fewer when the file has fewer pages.
        let cells = MapRenderer.cells(of: map, count: Int(min(UInt64(barW), max(map.pageCount, 1))))
        let cellW = Double(barW) / Double(cells.count)
        // Legend: one entry per line below the scale, so no label can run past the right edge.
        let legend = [(MapRenderer.Cell.shared, "shared: host may read, write, mmap (hatched)"),
                      (.private, "private: guest only, host EACCES / SIGBUS (solid)"),
                      (.mixed, "both: the cell is smaller than the detail (cross-hatched)")]
            .filter { $0.0 != .mixed || cells.contains(.mixed) }
        let scaleY = barY + barH + 20
        let legendY = scaleY + 30
        let lineHeight = 22
        let height = legendY + legend.count * lineHeight
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" viewBox="0 0 \(width) \(height)" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">
            <defs>
            <pattern id="shared" width="8" height="8" patternUnits="userSpaceOnUse"><rect width="8" height="8" fill="\(sharedColor)"/><path d="M-2,2 l4,-4 M0,8 l8,-8 M6,10 l4,-4" stroke="#ffffff" stroke-opacity="0.55" stroke-width="1.5"/></pattern>
            <pattern id="mixed" width="8" height="8" patternUnits="userSpaceOnUse"><rect width="8" height="8" fill="\(mixedColor)"/><path d="M0,0 l8,8 M0,8 l8,-8" stroke="#ffffff" stroke-opacity="0.6" stroke-width="1.2"/></pattern>
            </defs>
            <rect width="100%" height="100%" fill="#ffffff"/>
            <text x="\(barX)" y="30" font-size="18" font-weight="bold">\(escape(title))</text>
            <text x="\(barX)" y="50" font-size="13" fill="#444">\(Units.human(map.fileSize)), \(map.pageCount) pages, \(map.ranges.count) ranges: \(Units.human(map.sharedBytes)) shared, \(Units.human(map.privateBytes)) private</text>

            """
        // Run-length merge equal cells into one rectangle each.
        var i = 0
        while i < cells.count {
            var j = i
            while j + 1 < cells.count && cells[j + 1] == cells[i] { j += 1 }
            let x = Double(barX) + Double(i) * cellW
            svg += "<rect x=\"\(fmt(x))\" y=\"\(barY)\" width=\"\(fmt(Double(j - i + 1) * cellW))\" height=\"\(barH)\" fill=\"\(fill(cells[i]))\"/>\n"
            i = j + 1
        }
        if map.pageCount <= 128 {
            for p in 1..<max(Int(map.pageCount), 1) {
                let x = Double(barX) + Double(p) * cellW
                svg += "<line x1=\"\(fmt(x))\" y1=\"\(barY)\" x2=\"\(fmt(x))\" y2=\"\(barY + barH)\" stroke=\"#ffffff\" stroke-width=\"1\"/>\n"
            }
        }
        svg += "<rect x=\"\(barX)\" y=\"\(barY)\" width=\"\(barW)\" height=\"\(barH)\" fill=\"none\" stroke=\"#222\" stroke-width=\"1.5\"/>\n"
        // Scale: 0, middle, end.
        let ty = scaleY
        svg += "<text x=\"\(barX)\" y=\"\(ty)\" font-size=\"13\" text-anchor=\"start\">0</text>\n"
        svg += "<text x=\"\(barX + barW / 2)\" y=\"\(ty)\" font-size=\"13\" text-anchor=\"middle\">\(Units.human(map.fileSize / 2))</text>\n"
        svg += "<text x=\"\(barX + barW)\" y=\"\(ty)\" font-size=\"13\" text-anchor=\"end\">\(Units.human(map.fileSize))</text>\n"
        for (k, (cell, label)) in legend.enumerated() {
            let ly = legendY + k * lineHeight
            svg += "<rect x=\"\(barX)\" y=\"\(ly - 12)\" width=\"16\" height=\"16\" fill=\"\(fill(cell))\" stroke=\"#222\" stroke-width=\"0.5\"/>\n"
            svg += "<text x=\"\(barX + 24)\" y=\"\(ly + 1)\" font-size=\"13\">\(escape(label))</text>\n"
        }
        svg += "</svg>\n"
        return svg
    }

    static func fmt(_ v: Double) -> String { v == v.rounded() ? String(Int(v)) : String(format1: v) }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
