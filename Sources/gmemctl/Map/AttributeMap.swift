import Glibc
import GmemABI

/// One maximal run of pages with the same attributes: bytes `[start, end)`.
struct AttributeRange: Equatable, Sendable {
    var start: UInt64
    var end: UInt64
    var isPrivate: Bool
    var size: UInt64 { end - start }
    var name: String { GmemAttributeName(isPrivate: isPrivate).rawValue }
}

/// A gmem file's private/shared map, read through `user.gmem.attributes`.
struct AttributeMap: Equatable, Sendable {
    var path: String
    var fileSize: UInt64
    var ranges: [AttributeRange]

    /// Ranges are disjoint and inside the file (``parse(_:)`` drops empty or inverted lines), so
    /// the sums cannot overflow; the subtraction saturates all the same.
    var privateBytes: UInt64 { ranges.filter(\.isPrivate).reduce(0) { $0 &+ $1.size } }
    var sharedBytes: UInt64 { fileSize > privateBytes ? fileSize - privateBytes : 0 }
    var pageCount: UInt64 { fileSize / gmemPageSize }

    /// Reads the whole map of the file at `path`. A map whose text is larger than an xattr value
    /// may be (the daemon answers E2BIG) is read in windows
    /// (`user.gmem.attributes:START-END`), halving the window until it fits.
    ///
    /// The caller checks first that `path` is a gmem file (``GmemPath``).
    static func read(_ path: String) throws -> AttributeMap {
        var st = stat()
        guard stat(path, &st) == 0 else { throw SystemError("stat \(path)") }
        let size = UInt64(clamping: st.st_size)
        var ranges: [AttributeRange] = []
        do {
            ranges = try parse(Xattr.get(path, GmemXattr.attributes, hints: hints))
        } catch let e as SystemError where e.errno == E2BIG {
            var start: UInt64 = 0
            var window = size
            while start < size {
                let end = start + min(window, size - start)
                let name = GmemXattr.window(start: start, end: end)
                do {
                    append(try parse(Xattr.get(path, name, hints: hints)), to: &ranges)
                    start = end
                } catch let e as SystemError where e.errno == E2BIG && window > 4096 {
                    window = max(4096, (window / 2) & ~4095)
                }
            }
        }
        return AttributeMap(path: path, fileSize: size, ranges: ranges)
    }

    /// What a failed read of the map means.
    static let hints: [Int32: String] = [
        E2BIG: "the map is larger than one xattr value (64 KiB) even for a one-page window; read it in windows with getxattr \(GmemXattr.attributes):START-END (hex byte offsets)",
        ENODATA: "not a gmem file (no \(GmemXattr.attributes))",
    ]

    /// Appends window results, merging a range split at a window boundary.
    private static func append(_ more: [AttributeRange], to ranges: inout [AttributeRange]) {
        for r in more {
            if let last = ranges.last, last.end == r.start, last.isPrivate == r.isPrivate {
                ranges[ranges.count - 1].end = r.end
            } else {
                ranges.append(r)
            }
        }
    }

    /// Parses ``AttributeLine``s, dropping any line that is not one (empty or inverted ranges
    /// included), so the ranges are disjoint as the daemon prints them.
    static func parse(_ text: String) -> [AttributeRange] {
        text.split(separator: "\n").compactMap { line in
            (try? AttributeLine(parsing: line)).map { AttributeRange(start: $0.start, end: $0.end, isPrivate: $0.attribute.isPrivate) }
        }
    }

    /// The map as the daemon prints it (one ``AttributeLine`` per range).
    var text: String {
        ranges.map { AttributeLine.format(start: $0.start, end: $0.end, attribute: GmemAttributeName(isPrivate: $0.isPrivate)) }.joined()
    }
}
