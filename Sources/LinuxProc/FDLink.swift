/// The target of a `/proc/PID/fd/N` link (proc(5)), parsed.
///
/// Forms: an absolute path, with ` (deleted)` appended once the name is gone (a memfd reads
/// `/memfd:NAME (deleted)`); `anon_inode:NAME` for a file without an inode of its own
/// (`anon_inode:kvm-vm`, `anon_inode:[eventfd]`); `TYPE:[INODE]` for pipes, sockets and
/// namespaces (`pipe:[123]`, `socket:[456]`).
public enum FDLink: Sendable, Equatable {
    case path(String, deleted: Bool)
    case anonymousInode(String)
    case pseudo(type: String, inode: UInt64)

    /// Parses a link's text; nil when it has none of the forms above.
    public init?(_ text: String) {
        if text.hasPrefix("/") {
            let suffix = " (deleted)"
            self = text.hasSuffix(suffix) ? .path(String(text.dropLast(suffix.count)), deleted: true) : .path(text, deleted: false)
            return
        }
        guard let colon = text.firstIndex(of: ":"), colon != text.startIndex else { return nil }
        let type = String(text[..<colon]), rest = text[text.index(after: colon)...]
        if type == "anon_inode" {
            guard !rest.isEmpty else { return nil }
            self = .anonymousInode(String(rest))
            return
        }
        guard rest.hasPrefix("["), rest.hasSuffix("]"), let inode = UInt64(rest.dropFirst().dropLast()) else { return nil }
        self = .pseudo(type: type, inode: inode)
    }

    /// The path of a `.path` link (its name, deleted or not), nil otherwise.
    public var path: String? {
        if case .path(let p, _) = self { return p }
        return nil
    }
}
