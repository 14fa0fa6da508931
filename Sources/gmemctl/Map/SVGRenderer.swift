import Foundation

/// Draws an ``AttributeMap`` as a standalone SVG picture: a title, the bar of the whole file
/// (page grid when pages are few), a scale and a legend.
enum SVGRenderer {
    static let privateColor = "#d64545"
    static let sharedColor = "#3fa34d"
    static let mixedColor = "#e0b030"

    static func render(_ map: AttributeMap, title: String) -> String {
        let width = 880, barX = 40, barY = 64, barW = 800, barH = 56
        // One cell per pixel column at most; fewer when the file has fewer pages.
        let cells = MapRenderer.cells(of: map, count: Int(min(UInt64(barW), max(map.pageCount, 1))))
        let cellW = Double(barW) / Double(cells.count)
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="210" viewBox="0 0 \(width) 210" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">
            <rect width="100%" height="100%" fill="#ffffff"/>
            <text x="\(barX)" y="30" font-size="18" font-weight="bold">\(escape(title))</text>
            <text x="\(barX)" y="50" font-size="13" fill="#444">\(Units.human(map.fileSize)), \(map.pageCount) pages, \(map.ranges.count) ranges: \(Units.human(map.sharedBytes)) shared, \(Units.human(map.privateBytes)) private</text>

            """
        // Run-length merge equal cells into one rectangle each.
        var i = 0
        while i < cells.count {
            var j = i
            while j + 1 < cells.count && cells[j + 1] == cells[i] { j += 1 }
            let color = cells[i] == .private ? privateColor : cells[i] == .shared ? sharedColor : mixedColor
            let x = Double(barX) + Double(i) * cellW
            svg += "<rect x=\"\(fmt(x))\" y=\"\(barY)\" width=\"\(fmt(Double(j - i + 1) * cellW))\" height=\"\(barH)\" fill=\"\(color)\"/>\n"
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
        let ty = barY + barH + 20
        svg += "<text x=\"\(barX)\" y=\"\(ty)\" font-size=\"13\" text-anchor=\"start\">0</text>\n"
        svg += "<text x=\"\(barX + barW / 2)\" y=\"\(ty)\" font-size=\"13\" text-anchor=\"middle\">\(Units.human(map.fileSize / 2))</text>\n"
        svg += "<text x=\"\(barX + barW)\" y=\"\(ty)\" font-size=\"13\" text-anchor=\"end\">\(Units.human(map.fileSize))</text>\n"
        // Legend.
        let ly = ty + 30
        var lx = barX
        for (color, label) in [(sharedColor, "shared: host may read, write, mmap"), (privateColor, "private: guest only (host EACCES / SIGBUS)"), (mixedColor, "both (cell smaller than detail)")] {
            if color == mixedColor && !cells.contains(.mixed) { continue }
            svg += "<rect x=\"\(lx)\" y=\"\(ly - 12)\" width=\"14\" height=\"14\" fill=\"\(color)\"/>\n"
            svg += "<text x=\"\(lx + 20)\" y=\"\(ly)\" font-size=\"13\">\(escape(label))</text>\n"
            lx += 20 + label.count * 7 + 30
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
