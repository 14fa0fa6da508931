import ArgumentParser

/// `gmemctl create MOUNTPOINT NAME SIZE [--flags mmap,init-shared]`: sets `user.gmem.create`
/// on the mount root (the counterpart of KVM_CREATE_GUEST_MEMFD).
struct CreateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a file (setxattr user.gmem.create on the mount root).",
        discussion: "Memory starts private unless --flags includes init-shared; mmap allows MAP_SHARED mappings.")

    @Argument(help: "The gmemfs mount point.") var mountpoint: String
    @Argument(help: "The new file's name.") var name: String
    @Argument(help: "Size: a positive multiple of 4096, e.g. 64K, 1G, 0x10000.") var size: String
    @Option(help: "Comma list of mmap, init-shared.") var flags: String?

    func run() throws {
        let value = [name, size, flags].compactMap { $0 }.joined(separator: " ")
        try Xattr.set(mountpoint, Xattr.create, value)
        let shown = Units.parse(size).map(Units.human) ?? size
        print("created \(mountpoint)/\(name): \(shown)\(flags.map { ", flags \($0)" } ?? ""), all \(flags?.contains("init") == true ? "shared" : "private")")
    }
}
