import FuseKit
import Glibc
import GmemABI
import GmemCore
import SystemPackage

/// The ioctl-style xattr interface (docs/xattr-interface.md); names, limits and text formats
/// are ``GmemXattr``'s.
///
/// On the mount root:  `user.gmem.create` (set) · `user.gmem.stats` (get).
/// On a gmem file:     `user.gmem.set_attributes`, `user.gmem.inject` (set) · `user.gmem.attributes`,
///                     `user.gmem.attributes:START-END`, `user.gmem.flags`, `user.gmem.stats`,
///                     `user.gmem.inject` (get).
extension GmemFilesystem {
    public func setxattr(_ ctx: RequestContext, inode: InodeNumber, name: String, value: UnsafeRawBufferPointer, flags: Int32, reply: consuming Reply<EmptyReply>) {
        guard let n = node(inode) else { return reply.error(.notFound("inode \(inode)")) }
        do throws(GmemError) {
            switch (n, name) {
            case (.root, GmemXattr.create):
                let request = try CreateRequest(xattrValue: Array(value))
                try createFile(request)
                events.emit(Event(kind: .create, file: request.name, offset: 0, length: request.size, outcome: .ok,
                                  requester: Self.requester(ctx), detail: "flags=" + Self.flagsWord(request.flags)))
            case (.host(let f), GmemXattr.setAttributes), (.guest(let f), GmemXattr.setAttributes):
                do throws(ConversionRefusal) {
                    try convert(f, ctx, via: .xattr) { () throws(GmemError) in
                        try ConversionRequest(xattrValue: Array(value), fileSize: f.file.size)
                    }
                } catch {
                    refused("setxattr \(name) \(Self.quoted(value))", on: n, ctx, error.error)
                    return reply.error(error.errno)
                }
            case (.host(let f), GmemXattr.inject), (.guest(let f), GmemXattr.inject):
                try inject(f, ctx, try InjectionCommand(xattrValue: Array(value), fileSize: f.file.size))
            case (_, _) where name.hasPrefix(GmemXattr.prefix):
                throw GmemError.invalidArgument("\(name) cannot be set here")
            default:
                throw GmemError.notSupported("only user.gmem.* xattrs exist")
            }
            reply.complete(nil)
        } catch {
            if name.hasPrefix(GmemXattr.prefix) {
                refused("setxattr \(name) \(Self.quoted(value))", on: n, ctx, error)
            }
            // EAGAIN cannot pass through setxattr (the VFS takes it for "no handler"): EBUSY.
            reply.error(error.setxattrErrno)
        }
    }

    /// Logs one line for a refused `user.gmem.*` request or ioctl: what was asked, by whom, and
    /// why (the reason a bare errno cannot carry). Level notice: shown at the default level.
    func refused(_ request: String, on n: Node, _ ctx: RequestContext, _ e: GmemError, hint: String = "") {
        logger.notice("refused \(request) on \(n.displayName) from pid \(ctx.pid): \(e)\(hint)")
    }

    /// An xattr value for a log line: quoted, control bytes escaped, at most 128 bytes shown.
    static func quoted(_ value: UnsafeRawBufferPointer) -> String {
        let shown = value.prefix(128).map { b -> String in
            b >= 0x20 && b < 0x7f && b != UInt8(ascii: "\"") && b != UInt8(ascii: "\\") ? String(UnicodeScalar(b)) : "\\x" + String(b, radix: 16)
        }.joined()
        return "\"" + shown + (value.count > 128 ? "…" : "") + "\""
    }

    public func getxattr(_ ctx: RequestContext, inode: InodeNumber, name: String, size: Int, reply: consuming Reply<XattrReply>) {
        guard let n = node(inode) else { return reply.error(.notFound("inode \(inode)")) }
        do throws(GmemError) {
            let value = try xattrValue(of: n, name: name)
            guard value.utf8.count <= GmemXattr.sizeMax else { throw GmemError.valueTooLarge(value.utf8.count) }
            reply.value(Array(value.utf8), requested: size)
        } catch {
            // Unknown names (ENODATA) are routine for getfattr.
            if name.hasPrefix(GmemXattr.prefix), error.errno != .noData {
                var hint = ""
                if case .valueTooLarge = error, name == GmemXattr.attributes {
                    hint = "; read it in windows with \(GmemXattr.attributes):START-END (hex byte offsets, see docs/xattr-interface.md)"
                }
                refused("getxattr \(name)", on: n, ctx, error, hint: hint)
            }
            reply.error(error)
        }
    }

    public func listxattr(_ ctx: RequestContext, inode: InodeNumber, size: Int, reply: consuming Reply<XattrReply>) {
        guard let n = node(inode) else { return reply.error(.notFound("inode \(inode)")) }
        let names: [String]
        switch n {
        case .root: names = GmemXattr.rootReadable
        case .host, .guest: names = GmemXattr.fileReadable
        case .guestDirectory, .trace, .mapsDirectory, .map: names = []
        }
        let bytes = names.reduce(into: [UInt8]()) { $0 += Array($1.utf8) + [0] }
        reply.value(bytes, requested: size)
    }

    public func removexattr(_ ctx: RequestContext, inode: InodeNumber, name: String, reply: consuming Reply<EmptyReply>) {
        reply.error(node(inode) == nil ? .notFound("inode \(inode)") : .notSupported("user.gmem.* xattrs cannot be removed"))
    }

    /// The text of a readable xattr. Unknown names are ENODATA (never ENOSYS: that would make the
    /// kernel stop sending getxattr for the whole mount).
    func xattrValue(of n: Node, name: String) throws(GmemError) -> String {
        switch n {
        case .root where name == GmemXattr.stats:
            let files = namespace.withLock { $0.count }
            return GmemStats([
                (.files, String(files)),
                (.allocatedBytes, String(budget.usedPages * pageSize)),
                (.maxMemory, budget.limitPages.map { String($0 * pageSize) } ?? GmemStats.noLimit),
                (.populateKills, String(populateGuard.kills.load(ordering: .relaxed))),
                (.populateZeroAnswers, String(populateGuard.zeroAnswers.load(ordering: .relaxed))),
                (.populatePending, String(populateGuard.pendingGhosts)),
            ]).text
        case .host(let f), .guest(let f):
            let file = f.file
            switch name {
            case GmemXattr.flags:
                return file.flags.description
            case GmemXattr.stats:
                let s = file.stats
                return GmemStats([
                    (.size, String(s.size)),
                    (.allocatedBytes, String(s.allocatedBytes)),
                    (.privateBytes, String(s.privateBytes)),
                    (.sharedBytes, String(s.size - s.privateBytes)),
                    (.ranges, String(s.ranges)),
                    (.conversions, String(s.conversions)),
                    (.references, String(s.references)),
                    (.referencedBytes, String(s.referencedBytes)),
                    (.eagainRefusals, String(s.referenceRefusals)),
                    (.injectedFailures, String(s.injectedFailures)),
                    (.flags, file.flags.description),
                ]).text
            case GmemXattr.attributes:
                return attributesText(file, start: 0, end: file.size)
            case GmemXattr.inject:
                return file.armedFaults.map { $0.description + "\n" }.joined()
            case _ where name.hasPrefix(GmemXattr.attributes + ":"):
                let window = try Self.parseWindow(name.dropFirst(GmemXattr.attributes.count + 1))
                return attributesText(file, start: window.start, end: window.end)
            default:
                throw .noData(name)
            }
        default:
            throw .noData(name)
        }
    }

    /// `START-END` in the listing's own format (``GmemXattr/parseWindow(_:)``); ENODATA otherwise.
    static func parseWindow(_ text: Substring) throws(GmemError) -> (start: UInt64, end: UInt64) {
        do { return try GmemXattr.parseWindow(text) } catch { throw GmemError(error) }
    }

    /// One ``AttributeLine`` per maximal range. Stops once past the xattr limit (the caller
    /// answers E2BIG); `.maps/NAME` prints whole maps from ranges snapshotted the same way
    /// (``MapsDirectory``).
    func attributesText(_ file: GuestMemFile, start: UInt64, end: UInt64) -> String {
        var text = ""
        file.forEachAttributeRange(start: start, end: end) { s, e, a in
            guard text.utf8.count <= GmemXattr.sizeMax else { return }
            text += AttributeLine.format(start: s, end: e, attribute: a.attributeName)
        }
        return text
    }
}
