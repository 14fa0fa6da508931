import Glibc
import GmemABI
import LinuxMounts

/// A path checked to lie on a gmemfs mount, before gmemctl sends anything to it.
///
/// Without the check an xattr meant for gmemfs lands on whatever file system the path is on:
/// `setxattr user.gmem.create` on `/tmp` (tmpfs) succeeds and stores a plain attribute, and
/// gmemctl would report a file that does not exist. The check uses what the kernel states in
/// `/proc/self/mountinfo`: the mount holding the path (the longest mount-point prefix of its
/// real path, the last listed when mounts are stacked) has the file system type `fuse.gmemfs`
/// (gmemfs mounts with `subtype=gmemfs`), and its device number is the path's `st_dev`.
struct GmemPath {
    /// What a subcommand needs the path to be.
    enum Kind {
        /// The mount point itself (`create`).
        case mountRoot
        /// A regular file on the mount: a gmem file, host or guest view.
        case file
        /// Either (`stats`).
        case fileOrMountRoot
    }

    /// The path as the user gave it (for messages).
    let path: String
    /// The canonical absolute path (`realpath`).
    let realPath: String
    /// The mount point of the gmemfs mount holding it.
    let mountPoint: String
    let status: stat

    /// Resolves `path` and checks that it is on a gmemfs mount and is of `kind`. Throws
    /// ``SystemError`` when the path cannot be resolved (ENOENT, ENOTCONN on a dead mount) and
    /// ``Failure`` (exit 1) when it is on another file system or is not of `kind`.
    init(_ path: String, _ kind: Kind) throws {
        self.path = path
        guard let resolved = realpath(path, nil) else { throw SystemError(path, hints: Self.hints) }
        realPath = String(cString: resolved)
        free(resolved)
        var st = stat()
        guard stat(realPath, &st) == 0 else { throw SystemError("stat \(path)", hints: Self.hints) }
        status = st
        let mount = MountInfo.mount(containing: realPath, in: MountInfo.current() ?? [])
        guard let mount, mount.fileSystemType == GmemFileSystem.type, mount.isDevice(st.st_dev) else {
            let what = mount.map { "it is on \($0.fileSystemType) mounted at \($0.mountPoint)" } ?? "no mount found"
            throw Failure("\(path) is not on a gmemfs mount (\(what)); start gmemfs first or give a path under its mount point")
        }
        mountPoint = mount.mountPoint
        let isRoot = realPath == mountPoint
        let isFile = st.st_mode & S_IFMT == S_IFREG
        switch kind {
        case .mountRoot where !isRoot:
            throw Failure("\(path) is not the root of a gmemfs mount; give the mount point \(mountPoint)")
        case .file where !isFile:
            throw Failure("\(path) is not a gmem file (a \(isRoot ? "mount root" : "directory")); give a file on the mount")
        case .fileOrMountRoot where !isFile && !isRoot:
            throw Failure("\(path) is neither a gmem file nor the root of a gmemfs mount")
        default:
            break
        }
    }

    static let hints: [Int32: String] = [
        EACCES: "no permission to reach it (only the user who mounted gmemfs may enter the mount, unless it was mounted with -o allow_other)",
    ]

    /// The file size in bytes.
    var size: UInt64 { UInt64(clamping: status.st_size) }
}
