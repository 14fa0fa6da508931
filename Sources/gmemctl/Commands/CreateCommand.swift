import ArgumentParser
import Glibc
import GmemABI

/// `gmemctl create MOUNTPOINT NAME SIZE [--flags mmap,init-shared]`: sets `user.gmem.create`
/// on the mount root (the counterpart of KVM_CREATE_GUEST_MEMFD).
struct CreateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a file (setxattr user.gmem.create on the mount root).",
        discussion: """
            Memory starts private unless --flags includes init-shared; mmap allows
            MAP_SHARED mappings. MOUNTPOINT must be the root of a gmemfs mount; the new
            file is checked to exist afterwards.
            """)

    @Argument(help: "The gmemfs mount point.", completion: .directory) var mountpoint: String
    @Argument(help: "The new file's name (1-255 bytes; no '/', spaces, control characters or leading '.').") var name: String
    @Argument(help: "Size: a positive multiple of 4096, e.g. 64K, 1G, 0x10000.") var size: String
    @Option(help: "Comma list of mmap, init-shared (or a number: bit 0 mmap, bit 1 init-shared).") var flags: String?

    func run() throws {
        try Input.fileName(name)
        let bytes = try Input.size(size)
        let flagList = try flags.map(Input.flags) ?? []
        let root = try GmemPath(mountpoint, .mountRoot)
        let value = GmemXattr.createValue(name: name, size: bytes, flags: flagList)
        try Xattr.set(mountpoint, GmemXattr.create, value, hints: [
            EEXIST: "a file named \(name) already exists on this mount",
            EFBIG: "\(Units.human(bytes)) exceeds the largest file gmemfs serves (\(Units.human(GmemLimit.fileSizeMax)))",
            ENOSPC: "the mount has no address space left to reserve \(Units.human(bytes))",
            EINVAL: "the daemon refused the name, size or flags",
            EACCES: "creating needs write permission on the mount root",
            ENOMEM: "the daemon is out of memory",
        ])
        // The daemon answered success: the file must now exist, with the size asked for.
        let path = root.mountPoint + "/" + name
        var st = stat()
        guard stat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG, UInt64(clamping: st.st_size) == bytes else {
            throw Failure("setxattr \(GmemXattr.create) on \(mountpoint) reported success, but \(path) is not a \(Units.human(bytes)) file")
        }
        let shared = flagList.contains(.initShared)
        let shownFlags = flagList.isEmpty ? "" : ", flags \(flagList.map(\.rawValue).joined(separator: ","))"
        print("created \(mountpoint)/\(name): \(Units.human(bytes))\(shownFlags), all \(shared ? "shared" : "private")")
    }
}
