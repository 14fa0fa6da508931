/// One line of the `user.gmem.attributes` map: `START-END ATTR\n`, START and END lowercase hex
/// byte offsets (END exclusive), ATTR `private` or `shared`. The daemon prints one line per
/// maximal run of equal pages, in offset order.
public struct AttributeLine: Equatable, Sendable {
    public var start: UInt64
    public var end: UInt64
    public var attribute: GmemAttributeName

    public init(start: UInt64, end: UInt64, attribute: GmemAttributeName) {
        self.start = start; self.end = end; self.attribute = attribute
    }

    /// The line with its newline.
    public var text: String { Self.format(start: start, end: end, attribute: attribute) }

    /// `START-END ATTR\n` without building a value first (the daemon prints maps of many lines).
    public static func format(start: UInt64, end: UInt64, attribute: GmemAttributeName) -> String {
        String(start, radix: 16) + "-" + String(end, radix: 16) + " " + attribute.rawValue + "\n"
    }

    /// Parses one line (without its newline): exactly `START-END ATTR`, hex bounds with
    /// START < END, ATTR `private` or `shared`.
    public init<S: StringProtocol>(parsing line: S) throws(GmemABIError) {
        let parts = line.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 2, let attribute = GmemAttributeName(rawValue: String(parts[1])),
              let bounds = try? GmemXattr.parseWindow(Substring(parts[0])) else {
            throw .malformedLine(String(line))
        }
        self.init(start: bounds.start, end: bounds.end, attribute: attribute)
    }

    /// Parses a whole map, one line per `\n`-terminated line; the first bad line is an error.
    public static func parseMap(_ text: String) throws(GmemABIError) -> [AttributeLine] {
        var lines: [AttributeLine] = []
        for line in text.split(separator: "\n") { lines.append(try AttributeLine(parsing: line)) }
        return lines
    }
}
