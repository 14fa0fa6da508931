import FuseKit
import Glibc
import GmemABI
import GmemCore
import LinuxProc
import Synchronization

/// The bridge's side of the event trace and of the special files `.trace` and `.maps/NAME`
/// (docs/trace.md): adding the requester to events, and open/read/release dispatch.
///
/// The special names are reachable by lookup but not listed by readdir of the root (as
/// `.guest` is with `--guest-view`, they are the file system's own names: gmem file names cannot
/// start with `.`), so listings show only gmem files.
extension GmemFilesystem {
    // MARK: - Events

    /// Who sent `ctx`'s request. `comm` comes from proc(5)'s `comm` when the event happens
    /// (only while someone traces); a thread's name read in the last ``commLifetime`` is reused,
    /// so that a conversion's two events and a busy caller's stream cost one proc(5) read, not one
    /// each (a rename by exec or prctl shows after at most that long).
    static func requester(_ ctx: RequestContext?) -> Event.Requester {
        guard let ctx, ctx.pid > 0 else { return ctx.map { .init(pid: 0, uid: $0.uid, gid: $0.gid, comm: "-") } ?? .none }
        let now = Event.now()
        if let cached = commCache.withLock({ $0[ctx.pid] }), now &- cached.time < commLifetime {
            return Event.Requester(pid: ctx.pid, uid: ctx.uid, gid: ctx.gid, comm: cached.comm)
        }
        let comm = ProcFiles.readComm(ctx.pid) ?? "-"
        commCache.withLock { c in
            if c.count >= 256 { c.removeAll(keepingCapacity: true) }   // bounded: many short-lived callers
            c[ctx.pid] = (comm, now)
        }
        return Event.Requester(pid: ctx.pid, uid: ctx.uid, gid: ctx.gid, comm: comm)
    }

    /// Nanoseconds a thread's name is reused (20 ms).
    static let commLifetime: UInt64 = 20_000_000
    static let commCache = Mutex<[pid_t: (comm: String, time: UInt64)]>([:])

    /// `mmap,init-shared`, or `none`.
    static func flagsWord(_ flags: GmemFlags) -> String { GmemCreateFlag.word(flags.createFlags) }

    /// Emits an untimed event (one atomic load when nobody traces).
    @inline(__always)
    func trace(_ kind: Event.Kind, _ f: FileNode, _ offset: UInt64, _ length: UInt64, _ outcome: @autoclosure () -> Event.Outcome,
               _ ctx: RequestContext?, detail: @autoclosure () -> String = "") {
        events.emit(Event(kind: kind, file: f.name, offset: offset, length: length, outcome: outcome(),
                          requester: Self.requester(ctx), detail: detail()))
    }

    /// Emits a timed event begun at `start` (``EventHub/start()``; nil: nobody traced then).
    @inline(__always)
    func trace(since start: UInt64?, _ kind: Event.Kind, _ f: FileNode, _ offset: UInt64, _ length: UInt64,
               _ outcome: @autoclosure () -> Event.Outcome, _ ctx: RequestContext?, detail: @autoclosure () -> String = "") {
        events.emit(since: start) {
            Event(kind: kind, file: f.name, offset: offset, length: length, outcome: outcome(),
                  requester: Self.requester(ctx), detail: detail())
        }
    }

    // MARK: - Special nodes

    func lookupSpecial(parent: UInt64, name: String, reply: consuming Reply<EntryReply>) {
        switch (parent, name) {
        case (FixedInode.root, GmemSpecialName.trace): reply.entry(entry(.trace, inode: FixedInode.trace))
        case (FixedInode.root, GmemSpecialName.maps): reply.entry(entry(.mapsDirectory, inode: FixedInode.mapsDirectory))
        default:
            guard let f = namespace.withLock({ $0[name] }) else { return reply.error(.notFound("file '\(name)'")) }
            reply.entry(entry(.map(f), inode: f.hostInode | MapsDirectory.inodeBit))
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
            reply.open(OpenOptions(handle: trace.open(), directIO: true, nonseekable: true))
        case .map(let f):
            reply.open(OpenOptions(handle: maps.open(f.file), directIO: true))
        default:
            reply.error(.isDirectory(n.displayName))
        }
    }

    func readSpecial(_ ctx: RequestContext, _ n: Node, offset: Int, size: Int, file: FileInfo, reply: consuming Reply<DataReply>) {
        switch n {
        case .trace: trace.read(ctx, handle: file.handle, size: size, reply: reply)
        case .map: maps.read(handle: file.handle, offset: offset, size: size, reply: reply)
        default: reply.error(.isDirectory(n.displayName))
        }
    }

    /// Releases a special file's handle; false if `inode` is not a special file.
    func releaseSpecial(inode: UInt64, file: FileInfo) -> Bool {
        if inode == FixedInode.trace { trace.release(handle: file.handle); return true }
        if inode & MapsDirectory.inodeBit != 0 { maps.release(handle: file.handle); return true }
        return inode == FixedInode.mapsDirectory
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
