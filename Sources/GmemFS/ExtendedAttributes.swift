import FuseKit
import Glibc
import GmemCore
import SystemPackage

/// The ioctl-style xattr interface (docs/xattr-interface.md).
///
/// On the mount root:  `user.gmem.create` (set) · `user.gmem.stats` (get).
/// On a gmem file:     `user.gmem.set_attributes`, `user.gmem.inject` (set) · `user.gmem.attributes`,
///                     `user.gmem.attributes:START-END`, `user.gmem.flags`, `user.gmem.stats`,
///                     `user.gmem.inject` (get).
enum XattrName {
    static let prefix = "user.gmem."
    static let create = "user.gmem.create"
    static let setAttributes = "user.gmem.set_attributes"
    static let attributes = "user.gmem.attributes"
    static let flags = "user.gmem.flags"
    static let stats = "user.gmem.stats"
    static let inject = "user.gmem.inject"
    /// Readable names, as listxattr reports them.
    static let fileReadable = [attributes, flags, stats, inject]
    static let rootReadable = [stats]
    /// The largest value the VFS passes (XATTR_SIZE_MAX).
    static let sizeMax = 65536
}

extension GmemFilesystem {
    public func setxattr(_ ctx: RequestContext, inode: UInt64, name: String, value: UnsafeRawBufferPointer, flags: Int32, reply: consuming Reply<EmptyReply>) {
        guard let n = node(inode) else { return reply.error(.noSuchFileOrDirectory) }
        do {
            switch (n, name) {
            case (.root, XattrName.create):
                try createFile(try CreateRequest(xattrValue: Array(value)))
            case (.host(let f), XattrName.setAttributes), (.guest(let f), XattrName.setAttributes):
                try convert(f, try ConversionRequest(xattrValue: Array(value), fileSize: f.file.size))
            case (.host(let f), XattrName.inject), (.guest(let f), XattrName.inject):
                try inject(f, try InjectionCommand(xattrValue: Array(value), fileSize: f.file.size))
            case (_, _) where name.hasPrefix(XattrName.prefix):
                throw GmemError.invalidArgument("\(name) cannot be set here")
            default:
                throw GmemError.notSupported("only user.gmem.* xattrs exist")
            }
            reply.complete(nil)
        } catch let e as GmemError {
            logger.debug("setxattr \(name): \(e)")
            reply.error(e.setxattrErrno)
        } catch {
            reply.error(.ioError)
        }
    }

    public func getxattr(_ ctx: RequestContext, inode: UInt64, name: String, size: Int, reply: consuming Reply<XattrReply>) {
        guard let n = node(inode) else { return reply.error(.noSuchFileOrDirectory) }
        do {
            let value = try xattrValue(of: n, name: name)
            guard value.utf8.count <= XattrName.sizeMax else { throw GmemError.valueTooLarge(value.utf8.count) }
            if size == 0 { return reply.size(value.utf8.count) }
            guard value.utf8.count <= size else { throw GmemError.bufferTooSmall(needed: value.utf8.count) }
            reply.value(Array(value.utf8))
        } catch let e as GmemError {
            reply.error(e.errno)
        } catch {
            reply.error(.ioError)
        }
    }

    public func listxattr(_ ctx: RequestContext, inode: UInt64, size: Int, reply: consuming Reply<XattrReply>) {
        guard let n = node(inode) else { return reply.error(.noSuchFileOrDirectory) }
        let names: [String]
        switch n {
        case .root: names = XattrName.rootReadable
        case .host, .guest: names = XattrName.fileReadable
        case .guestDirectory: names = []
        }
        let bytes = names.reduce(into: [UInt8]()) { $0 += Array($1.utf8) + [0] }
        if size == 0 { return reply.size(bytes.count) }
        guard bytes.count <= size else { return reply.error(.outOfRange) }
        reply.value(bytes)
    }

    public func removexattr(_ ctx: RequestContext, inode: UInt64, name: String, reply: consuming Reply<EmptyReply>) {
        reply.error(node(inode) == nil ? .noSuchFileOrDirectory : .notSupported)
    }

    /// The text of a readable xattr. Unknown names are ENODATA (never ENOSYS: that would make the
    /// kernel stop sending getxattr for the whole mount).
    func xattrValue(of n: Node, name: String) throws(GmemError) -> String {
        switch n {
        case .root where name == XattrName.stats:
            let files = namespace.withLock { $0.count }
            var s = "files=\(files)\nallocated_bytes=\(budget.usedPages * pageSize)\n"
            s += "max_memory=\(budget.limitPages.map { String($0 * pageSize) } ?? "none")\n"
            s += "populate_kills=\(populateGuard.kills.load(ordering: .relaxed))\n"
            return s
        case .host(let f), .guest(let f):
            let file = f.file
            switch name {
            case XattrName.flags:
                return file.flags.description
            case XattrName.stats:
                let s = file.stats
                return """
                    size=\(s.size)
                    allocated_bytes=\(s.allocatedBytes)
                    private_bytes=\(s.privateBytes)
                    shared_bytes=\(s.size - s.privateBytes)
                    ranges=\(s.ranges)
                    conversions=\(s.conversions)
                    references=\(s.references)
                    referenced_bytes=\(s.referencedBytes)
                    eagain_refusals=\(s.referenceRefusals)
                    injected_failures=\(s.injectedFailures)
                    flags=\(file.flags.description)

                    """
            case XattrName.attributes:
                return attributesText(file, start: 0, end: file.size)
            case XattrName.inject:
                return file.armedFaults.map { $0.description + "\n" }.joined()
            case _ where name.hasPrefix(XattrName.attributes + ":"):
                let window = try Self.parseWindow(name.dropFirst(XattrName.attributes.count + 1))
                return attributesText(file, start: window.start, end: window.end)
            default:
                throw .noData(name)
            }
        default:
            throw .noData(name)
        }
    }

    /// `START-END` in the listing's own format (hex byte offsets, END exclusive).
    static func parseWindow(_ text: Substring) throws(GmemError) -> (start: UInt64, end: UInt64) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        // Only hex digits: UInt64(_:radix:) alone also takes a leading "+".
        guard parts.count == 2, parts.allSatisfy({ $0.allSatisfy(\.isHexDigit) }),
              let start = UInt64(parts[0], radix: 16), let end = UInt64(parts[1], radix: 16), start < end else {
            throw .noData("window must be START-END in hex with START < END")
        }
        return (start, end)
    }

    /// One line per maximal range: `START-END ATTR`, lowercase hex byte offsets, END exclusive.
    func attributesText(_ file: GuestMemFile, start: UInt64, end: UInt64) -> String {
        var text = ""
        file.forEachAttributeRange(start: start, end: end) { s, e, a in
            // Past the xattr limit the caller answers E2BIG: stop building early.
            guard text.utf8.count <= XattrName.sizeMax else { return }
            text += String(s, radix: 16) + "-" + String(e, radix: 16) + " " + a.name + "\n"
        }
        return text
    }

    // MARK: - ioctl

    public func ioctl(_ ctx: RequestContext, inode: UInt64, command: UInt32, input: UnsafeRawBufferPointer, outputSize: Int, file: FileInfo, reply: consuming Reply<IoctlReply>) {
        guard let n = node(inode), let f = n.file else { return reply.error(.inappropriateIOCTLForDevice) }
        if command == GmemPageReference.pinNumber || command == GmemPageReference.unpinNumber {
            return pinIoctl(n, f, pin: command == GmemPageReference.pinNumber, input: input, file: file, reply: reply)
        }
        guard command == KVMMemoryAttributes2.ioctlNumber else { return reply.error(.inappropriateIOCTLForDevice) }
        // A conversion changes the file: like write(2), it needs a handle open for writing.
        guard Int32(truncatingIfNeeded: file.handle) & O_ACCMODE != O_RDONLY else { return reply.error(.badFileDescriptor) }
        do {
            let args = try KVMMemoryAttributes2(bytes: input)
            try convert(f, try args.request(fileSize: f.file.size))
            // Success copies nothing back, as in the kernel (error_offset is only written on failure).
            reply.result(0, output: UnsafeRawBufferPointer(start: nil, count: 0))
        } catch {
            // kvm_gmem_set_attributes: error_offset is set and the whole struct copied back, and the
            // call fails: a negative result with output data does both (fuse_do_ioctl copies the
            // output out, then returns the result; measured on Linux 6.18).
            guard let offset = error.errorOffset, outputSize >= KVMMemoryAttributes2.byteCount,
                  var args = try? KVMMemoryAttributes2(bytes: input) else { return reply.error(error.errno) }
            args.errorOffset = offset
            var pending: Reply<IoctlReply>? = consume reply
            args.bytes.withUnsafeBytes { pending.take()!.result(-error.errno.rawValue, output: $0) }
        }
    }
}
