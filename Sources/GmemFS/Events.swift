import FuseKit
import Glibc
import GmemABI
import GmemCore
import LinuxProc
import Synchronization

/// The bridge's side of the event trace (docs/trace.md): who sent a request (the requester
/// added to every event) and the helpers that emit a file's events.
extension GmemFilesystem {
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
}
