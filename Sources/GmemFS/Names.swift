import CLinuxSys
import FuseKit
import Synchronization
import Glibc
import GmemABI
import GmemCore
import Logging
import SystemPackage

/// Names: lookup, unlink, and the refused ways of making names (files are made only by
/// `user.gmem.create`).
extension GmemFilesystem {
    public func lookup(_ ctx: RequestContext, parent: InodeNumber, name: String, reply: consuming Reply<EntryReply>) {
        switch (node(parent), name) {
        case (.root?, GmemSpecialName.trace), (.root?, GmemSpecialName.maps), (.mapsDirectory?, _):
            lookupSpecial(parent: parent, name: name, reply: reply)
        case (.root?, GmemSpecialName.guest) where options.guestView:
            reply.entry(entry(.guestDirectory, inode: .guestDirectory))
        case (.root?, _):
            guard let f = namespace.withLock({ $0[name] }) else { return reply.error(.notFound("file '\(name)'")) }
            reply.entry(entry(.host(f), inode: f.hostInode))
        case (.guestDirectory?, _):
            guard let f = namespace.withLock({ $0[name] }) else { return reply.error(.notFound("file '\(name)'")) }
            reply.entry(entry(.guest(f), inode: f.guestInode))
        case (nil, _): reply.error(.notFound("inode \(parent)"))
        default: reply.error(.notDirectory("inode \(parent)"))
        }
    }


    public func unlink(_ ctx: RequestContext, parent: InodeNumber, name: String, reply: consuming Reply<EmptyReply>) {
        guard parent == .root else { return reply.error(.notPermitted("files exist only in the mount root")) }
        guard let f = namespace.withLock({ $0.remove(name) }) else { return reply.error(.notFound("file '\(name)'")) }
        let gone = f.lifetime.withLock { l -> Bool in
            l.unlinked = true
            return l.openHandles == 0
        }
        if gone { namespace.withLock { $0.drop(f) } }
        trace(.remove, f, 0, f.file.size, .ok, ctx)
        logger.info("removed \(name)\(gone ? "" : " (memory freed at last close)")")
        reply.complete(nil)
    }

    // Files come only from user.gmem.create: every other way of making a name, or changing one,
    // is refused (CREATE, i.e. open with O_CREAT of a new name, included).
    public func create(_ ctx: RequestContext, parent: InodeNumber, name: String, mode: mode_t, flags: Int32, reply: consuming Reply<CreateReply>) { reply.error(Self.namesAreFixed) }
    public func mknod(_ ctx: RequestContext, parent: InodeNumber, name: String, mode: mode_t, reply: consuming Reply<EntryReply>) { reply.error(Self.namesAreFixed) }
    public func mkdir(_ ctx: RequestContext, parent: InodeNumber, name: String, mode: mode_t, reply: consuming Reply<EntryReply>) { reply.error(Self.namesAreFixed) }
    public func symlink(_ ctx: RequestContext, target: String, parent: InodeNumber, name: String, reply: consuming Reply<EntryReply>) { reply.error(Self.namesAreFixed) }
    public func link(_ ctx: RequestContext, inode: InodeNumber, newParent: InodeNumber, newName: String, reply: consuming Reply<EntryReply>) { reply.error(Self.namesAreFixed) }
    public func rename(_ ctx: RequestContext, parent: InodeNumber, name: String, newParent: InodeNumber, newName: String, reply: consuming Reply<EmptyReply>) { reply.error(Self.namesAreFixed) }
    public func rmdir(_ ctx: RequestContext, parent: InodeNumber, name: String, reply: consuming Reply<EmptyReply>) { reply.error(Self.namesAreFixed) }

    static let namesAreFixed = GmemError.notPermitted("files are made only by user.gmem.create")
}
