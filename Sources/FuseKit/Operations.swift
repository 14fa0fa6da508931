import CFuse
import Glibc
import SystemPackage

/// Holds the file system for the C callbacks; passed to libfuse as userdata.
final class FilesystemBox: @unchecked Sendable {
    let fs: any LowLevelFilesystem
    /// Runs in INIT before the reply (set before the loop starts, read-only afterwards).
    var initHook: (@Sendable (UnsafeMutablePointer<fuse_conn_info>) -> Void)?
    /// The io_uring transport, read by the custom io's callbacks (set before the loop starts).
    var uring: UnsafeMutablePointer<cfuse_uring>?
    init(_ fs: any LowLevelFilesystem) { self.fs = fs }
}

@inline(__always)
private func filesystem(_ req: fuse_req_t?) -> any LowLevelFilesystem {
    Unmanaged<FilesystemBox>.fromOpaque(fuse_req_userdata(req)!).takeUnretainedValue().fs
}

@inline(__always)
private func context(_ req: fuse_req_t?) -> RequestContext {
    let c = fuse_req_ctx(req)!.pointee
    return RequestContext(uid: c.uid, gid: c.gid, pid: c.pid)
}

@inline(__always)
private func string(_ p: UnsafePointer<CChar>?) -> String { String(cString: p!) }

/// A name the kernel asks for, or nil when it is not UTF-8: such a name cannot be a `String`
/// (decoding would repair it into a different, valid name), so it names nothing.
@inline(__always)
private func existingName(_ p: UnsafePointer<CChar>?) -> String? { String(validatingCString: p!) }

/// Capabilities this layer turns off in `init`, with the reason for each.
private func negotiate(_ conn: UnsafeMutablePointer<fuse_conn_info>) {
    // Splice did not help on this platform and replying with writev from page memory is faster
    // (docs/fuse-kernel-notes.md, "Splice").
    conn.pointee.want &= ~UInt32(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE)
    // The file system invalidates the page cache itself, exactly where contents change behind the
    // kernel's back; mtime-driven invalidation would only throw away good pages.
    conn.pointee.want &= ~UInt32(FUSE_CAP_AUTO_INVAL_DATA)
    // Asynchronous direct I/O splits an O_DIRECT write into parallel requests and turns a short
    // reply into EIO after storing the first part; synchronous direct I/O returns the short count.
    conn.pointee.want &= ~UInt32(FUSE_CAP_ASYNC_DIO)
    // O_TRUNC must reach open() so that it can be refused (libfuse enables this by default).
    conn.pointee.want |= UInt32(FUSE_CAP_ATOMIC_O_TRUNC)
}

/// The single table of libfuse callbacks: each decodes its C arguments, builds the typed reply
/// and calls the matching ``LowLevelFilesystem`` method.
let operations: fuse_lowlevel_ops = {
    var o = fuse_lowlevel_ops()
    o.`init` = { userdata, conn in
        negotiate(conn!)
        let box = Unmanaged<FilesystemBox>.fromOpaque(userdata!).takeUnretainedValue()
        box.initHook?(conn!)
        box.fs.initialize()
    }
    o.lookup = { req, parent, name in
        guard let n = existingName(name) else { fuse_reply_err(req, ENOENT); return }
        filesystem(req).lookup(context(req), parent: InodeNumber(parent), name: n, reply: Reply(req!))
    }
    o.forget = { req, ino, n in
        filesystem(req).forget(inode: InodeNumber(ino), lookups: n)
        fuse_reply_none(req)
    }
    o.forget_multi = { req, count, forgets in
        let fs = filesystem(req)
        for i in 0..<count { fs.forget(inode: InodeNumber(forgets![i].ino), lookups: forgets![i].nlookup) }
        fuse_reply_none(req)
    }
    o.getattr = { req, ino, _ in
        filesystem(req).getattr(context(req), inode: InodeNumber(ino), reply: Reply(req!))
    }
    o.setattr = { req, ino, attr, toSet, fi in
        let a = attr!.pointee
        var c = SetAttributes()
        if toSet & FUSE_SET_ATTR_MODE != 0 { c.mode = a.st_mode }
        if toSet & FUSE_SET_ATTR_UID != 0 { c.uid = a.st_uid }
        if toSet & FUSE_SET_ATTR_GID != 0 { c.gid = a.st_gid }
        if toSet & FUSE_SET_ATTR_SIZE != 0 { c.size = a.st_size }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        if toSet & FUSE_SET_ATTR_ATIME_NOW != 0 { c.accessTime = now } else if toSet & FUSE_SET_ATTR_ATIME != 0 { c.accessTime = a.st_atim }
        if toSet & FUSE_SET_ATTR_MTIME_NOW != 0 { c.modificationTime = now } else if toSet & FUSE_SET_ATTR_MTIME != 0 { c.modificationTime = a.st_mtim }
        filesystem(req).setattr(context(req), inode: InodeNumber(ino), c, file: fi.map { FileInfo($0) }, reply: Reply(req!))
    }
    o.mknod = { req, parent, name, mode, _ in
        filesystem(req).mknod(context(req), parent: InodeNumber(parent), name: string(name), mode: mode, reply: Reply(req!))
    }
    o.mkdir = { req, parent, name, mode in
        filesystem(req).mkdir(context(req), parent: InodeNumber(parent), name: string(name), mode: mode, reply: Reply(req!))
    }
    o.unlink = { req, parent, name in
        guard let n = existingName(name) else { fuse_reply_err(req, ENOENT); return }
        filesystem(req).unlink(context(req), parent: InodeNumber(parent), name: n, reply: Reply(req!))
    }
    o.rmdir = { req, parent, name in
        guard let n = existingName(name) else { fuse_reply_err(req, ENOENT); return }
        filesystem(req).rmdir(context(req), parent: InodeNumber(parent), name: n, reply: Reply(req!))
    }
    o.symlink = { req, target, parent, name in
        filesystem(req).symlink(context(req), target: string(target), parent: InodeNumber(parent), name: string(name), reply: Reply(req!))
    }
    o.rename = { req, parent, name, newParent, newName, _ in
        filesystem(req).rename(context(req), parent: InodeNumber(parent), name: string(name), newParent: InodeNumber(newParent), newName: string(newName), reply: Reply(req!))
    }
    o.link = { req, ino, newParent, newName in
        filesystem(req).link(context(req), inode: InodeNumber(ino), newParent: InodeNumber(newParent), newName: string(newName), reply: Reply(req!))
    }
    o.create = { req, parent, name, mode, fi in
        filesystem(req).create(context(req), parent: InodeNumber(parent), name: string(name), mode: mode, flags: fi?.pointee.flags ?? 0, reply: Reply(req!, fi))
    }
    o.open = { req, ino, fi in
        filesystem(req).open(context(req), inode: InodeNumber(ino), flags: fi!.pointee.flags, reply: Reply(req!, fi))
    }
    o.read = { req, ino, size, off, fi in
        filesystem(req).read(context(req), inode: InodeNumber(ino), offset: off, size: size, file: FileInfo(fi), reply: Reply(req!))
    }
    o.write = { req, ino, buf, size, off, fi in
        filesystem(req).write(context(req), inode: InodeNumber(ino), offset: off, data: UnsafeRawBufferPointer(start: buf, count: size),
                              file: FileInfo(fi), reply: Reply(req!))
    }
    o.flush = { req, ino, fi in
        filesystem(req).flush(context(req), inode: InodeNumber(ino), file: FileInfo(fi), reply: Reply(req!))
    }
    o.release = { req, ino, fi in
        filesystem(req).release(inode: InodeNumber(ino), file: FileInfo(fi))
        fuse_reply_err(req, 0)
    }
    o.fsync = { req, ino, _, fi in
        filesystem(req).fsync(context(req), inode: InodeNumber(ino), file: FileInfo(fi), reply: Reply(req!))
    }
    o.readdir = { req, ino, size, off, _ in
        filesystem(req).readdir(context(req), inode: InodeNumber(ino), offset: off, size: size, reply: Reply(req!))
    }
    o.statfs = { req, ino in
        filesystem(req).statfs(context(req), inode: InodeNumber(ino), reply: Reply(req!))
    }
    o.setxattr = { req, ino, name, value, size, flags in
        filesystem(req).setxattr(context(req), inode: InodeNumber(ino), name: string(name), value: UnsafeRawBufferPointer(start: value, count: size),
                                 flags: flags, reply: Reply(req!))
    }
    o.getxattr = { req, ino, name, size in
        filesystem(req).getxattr(context(req), inode: InodeNumber(ino), name: string(name), size: size, reply: Reply(req!))
    }
    o.listxattr = { req, ino, size in
        filesystem(req).listxattr(context(req), inode: InodeNumber(ino), size: size, reply: Reply(req!))
    }
    o.removexattr = { req, ino, name in
        filesystem(req).removexattr(context(req), inode: InodeNumber(ino), name: string(name), reply: Reply(req!))
    }
    o.fallocate = { req, ino, mode, off, len, fi in
        filesystem(req).fallocate(context(req), inode: InodeNumber(ino), mode: mode, offset: off, length: len, file: FileInfo(fi), reply: Reply(req!))
    }
    o.lseek = { req, ino, off, whence, fi in
        filesystem(req).lseek(context(req), inode: InodeNumber(ino), offset: off, whence: whence, file: FileInfo(fi), reply: Reply(req!))
    }
    o.ioctl = { req, ino, cmd, _, fi, _, inBuf, inSize, outSize in
        filesystem(req).ioctl(context(req), inode: InodeNumber(ino), command: cmd, input: UnsafeRawBufferPointer(start: inBuf, count: inSize),
                              outputSize: outSize, file: FileInfo(fi), reply: Reply(req!))
    }
    return o
}()
