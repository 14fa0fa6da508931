import CLinuxSys
import FuseKit
import Synchronization
import Glibc
import GmemABI
import GmemCore
import Logging
import SystemPackage

/// Inodes and their attributes: a node's `stat`, its entry and timeouts, getattr, setattr,
/// and readdir of the root and `.guest`.
extension GmemFilesystem {
    func stat(of node: Node, inode: InodeNumber) -> stat {
        var st = Glibc.stat()
        st.st_ino = UInt(inode.rawValue)
        st.st_nlink = 1
        switch node {
        case .trace, .mapsDirectory, .map:
            specialStat(node, into: &st)
        case .root, .guestDirectory:
            let m = node.isRoot ? rootMetadata.withLock { $0 } : Metadata(mode: S_IFDIR | 0o700, uid: daemonUID, gid: daemonGID)
            st.st_mode = m.mode; st.st_uid = m.uid; st.st_gid = m.gid
            st.st_nlink = 2
            st.st_atim = m.atime; st.st_mtim = m.mtime; st.st_ctim = m.ctime
        case .host(let f), .guest(let f):
            var m = f.metadata.withLock { $0 }
            if case .guest = node { m.mode = S_IFREG | 0o600; m.uid = daemonUID; m.gid = daemonGID }
            st.st_mode = m.mode; st.st_uid = m.uid; st.st_gid = m.gid
            st.st_atim = m.atime; st.st_mtim = m.mtime; st.st_ctim = m.ctime
            st.st_nlink = f.lifetime.withLock { $0.unlinked } ? 0 : 1
            st.st_size = Int(f.file.size)
            if case .guest = node {
                st.st_blocks = 0   // the memory is the host file's: `du` must count it once
            } else {
                st.st_blocks = options.fidelity.hostBlocks(allocatedBytes: f.file.allocatedBytes)
            }
        }
        st.st_blksize = Int(pageSize)
        return st
    }

    func entry(_ node: Node, inode: InodeNumber) -> EntryParameters {
        EntryParameters(inode: inode, attributes: stat(of: node, inode: inode),
                        attributeTimeout: Self.attributeTimeout(node), entryTimeout: Self.entryTimeout(node))
    }

    /// Seconds the kernel may cache a name. Host names: an hour (a host name goes away only
    /// through an unlink, which the kernel sees and drops). Guest names: never cached. `rm M/NAME`
    /// removes `.guest/NAME` behind the kernel's back; a cached guest entry would point at the
    /// old inode after a re-create (ENOENT for an hour). Invalidating it instead
    /// (`notify_inval_entry`) from the unlink or create handler deadlocks: the kernel holds the
    /// parent directory's lock while that request is in flight. See docs/semantics.md.
    static func entryTimeout(_ node: Node) -> Double {
        if case .guest = node { return 0 }
        return 3600
    }

    /// Seconds the kernel may cache a node's attributes.
    static func attributeTimeout(_ node: Node) -> Double {
        switch node {
        case .guest, .map: return 0   // (a map's mode follows its file's)
        default: return 1
        }
    }


    public func getattr(_ ctx: RequestContext, inode: InodeNumber, reply: consuming Reply<AttrReply>) {
        guard let n = node(inode) else { return reply.error(.notFound("inode \(inode)")) }
        reply.attr(stat(of: n, inode: inode), timeout: Self.attributeTimeout(n))
    }

    public func setattr(_ ctx: RequestContext, inode: InodeNumber, _ changes: SetAttributes, file: FileInfo?, reply: consuming Reply<AttrReply>) {
        guard let n = node(inode) else { return reply.error(.notFound("inode \(inode)")) }
        let ownerOrMode = changes.mode != nil || changes.uid != nil || changes.gid != nil
        do throws(GmemError) {
            try options.fidelity.checkSetattr(AttributeChanges(size: changes.size != nil, ownerOrMode: ownerOrMode), on: n.kind)
        } catch {
            // `echo x > FILE`, `cp` and `tee` truncate first (O_TRUNC): say why they fail.
            let hint = changes.size != nil ? " (the size is fixed; write in place: dd conv=notrunc)" : ""
            refused("setattr", on: n, ctx, error, hint: hint)
            return reply.error(error)
        }
        func apply(_ m: inout Metadata) {
            if let mode = changes.mode { m.mode = (m.mode & S_IFMT) | (mode & 0o7777) }
            if let uid = changes.uid { m.uid = uid }
            if let gid = changes.gid { m.gid = gid }
            if let t = changes.accessTime { m.atime = t }
            if let t = changes.modificationTime { m.mtime = t }
            clock_gettime(CLOCK_REALTIME, &m.ctime)
        }
        switch n {
        case .root: rootMetadata.withLock { apply(&$0) }
        case .host(let f): f.metadata.withLock { apply(&$0) }
        case .guestDirectory, .guest, .trace, .mapsDirectory, .map: break   // only times, which these ignore
        }
        reply.attr(stat(of: n, inode: inode), timeout: Self.attributeTimeout(n))
    }

    /// Offsets are cookies that stay valid while names come and go: 1, 2 and 3 follow `.`, `..`
    /// and `.guest`; a file's is its host inode (creation order, never reused), so removing an
    /// entry already listed cannot make a continued listing skip one that was not.
    public func readdir(_ ctx: RequestContext, inode: InodeNumber, offset: Int, size: Int, reply: consuming Reply<DirectoryReply>) {
        guard let n = node(inode) else { return reply.error(.notFound("inode \(inode)")) }
        var entries: [(name: String, inode: InodeNumber, mode: mode_t, cookie: UInt64)] =
            [(".", inode, S_IFDIR, 1), ("..", .root, S_IFDIR, 2)]
        let files = namespace.withLock { $0.order }
        switch n {
        case .root:
            if options.guestView { entries.append((GmemSpecialName.guest, .guestDirectory, S_IFDIR, 3)) }
            entries += files.map { ($0.name, $0.hostInode, S_IFREG, $0.hostInode.rawValue) }
        case .guestDirectory:
            entries += files.map { ($0.name, $0.guestInode, S_IFREG, $0.hostInode.rawValue) }
        case .mapsDirectory:
            entries += files.map { ($0.name, $0.hostInode.mapFile, S_IFREG, $0.hostInode.rawValue) }
        default: return reply.error(.notDirectory("inode \(inode)"))
        }
        var buffer = reply.makeBuffer(capacity: size)
        for e in entries where e.cookie > UInt64(max(0, offset)) {
            guard buffer.add(name: e.name, inode: e.inode, mode: e.mode, nextOffset: Int(e.cookie)) else { break }
        }
        reply.entries(buffer)
    }
}
