import FuseKit
import Glibc
import GmemABI
import GmemCore
import Synchronization

/// The special files `.trace` and `.maps/NAME` (docs/trace.md): lookup, stat, and
/// open/read/release dispatch.
///
/// The special names are reachable by lookup but not listed by readdir of the root (as
/// `.guest` is with `--guest-view`, they are the file system's own names: gmem file names cannot
/// start with `.`), so listings show only gmem files.
extension GmemFilesystem {
    func lookupSpecial(parent: InodeNumber, name: String, reply: consuming Reply<EntryReply>) {
        switch (parent, name) {
        case (.root, GmemSpecialName.trace): reply.entry(entry(.trace, inode: .trace))
        case (.root, GmemSpecialName.maps): reply.entry(entry(.mapsDirectory, inode: .mapsDirectory))
        default:
            guard let f = namespace.withLock({ $0[name] }) else { return reply.error(.notFound("file '\(name)'")) }
            reply.entry(entry(.map(f), inode: f.hostInode.mapFile))
        }
    }

    /// Owner and mode: `.trace` is 0400 and `.maps` 0555, the daemon's user's (as the guest
    /// view: the trace shows private-page activity); a map has its file's owner and the read
    /// bits of its mode (as `user.gmem.attributes`).
    func specialStat(_ node: Node, into st: inout stat) {
        var m: Metadata
        switch node {
        case .trace: m = Metadata(mode: S_IFREG | 0o400, uid: daemonUID, gid: daemonGID)
        case .mapsDirectory:
            m = Metadata(mode: S_IFDIR | 0o555, uid: daemonUID, gid: daemonGID)
            st.st_nlink = 2
        case .map(let f):
            m = f.metadata.withLock { $0 }
            m.mode = S_IFREG | (m.mode & 0o444)
        default: return
        }
        st.st_mode = m.mode; st.st_uid = m.uid; st.st_gid = m.gid
        st.st_atim = m.atime; st.st_mtim = m.mtime; st.st_ctim = m.ctime
    }

    func openSpecial(_ n: Node, flags: Int32, reply: consuming Reply<OpenReply>) {
        do throws(GmemError) { try OpenRequest.checkReadOnly(flags: flags, name: n.displayName) } catch { return reply.error(error) }
        switch n {
        case .trace:
            reply.open(OpenOptions(handle: traceFile.open(), directIO: true, nonseekable: true, noflush: true))
        case .map(let f):
            reply.open(OpenOptions(handle: maps.open(f.file), directIO: true, noflush: true))
        default:
            reply.error(.isDirectory(n.displayName))
        }
    }

    func readSpecial(_ ctx: RequestContext, _ n: Node, offset: Int, size: Int, file: FileInfo, reply: consuming Reply<DataReply>) {
        switch n {
        case .trace: traceFile.read(ctx, handle: file.handle, size: size, reply: reply)
        case .map: maps.read(handle: file.handle, offset: offset, size: size, reply: reply)
        default: reply.error(.isDirectory(n.displayName))
        }
    }

    /// Releases a special file's handle; false if `inode` is not a special file.
    func releaseSpecial(inode: InodeNumber, file: FileInfo) -> Bool {
        if inode == .trace { traceFile.release(handle: file.handle); return true }
        if case .map = inode.target { maps.release(handle: file.handle); return true }
        return inode == .mapsDirectory
    }
}

extension Node {
    var isSpecial: Bool {
        switch self {
        case .trace, .mapsDirectory, .map: true
        default: false
        }
    }
}

extension Event.Outcome {
    init(_ c: GuestMemFile.ConversionOutcome) {
        switch c {
        case .unchanged: self = .unchanged
        case .becamePrivate: self = .becamePrivate
        case .becameShared: self = .becameShared
        }
    }
}
