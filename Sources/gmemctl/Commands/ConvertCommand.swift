import ArgumentParser
import Glibc
import GmemABI

/// `gmemctl convert private|shared FILE OFFSET SIZE [--ioctl]`.
struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a page-aligned range to private or shared (contents are kept).",
        discussion: """
            By default through the xattr (setxattr user.gmem.set_attributes
            "OFFSET SIZE ATTR"); with --ioctl through KVM_SET_MEMORY_ATTRIBUTES2
            (0xC080AED2), as a VMM would. OFFSET and SIZE are checked first
            (multiples of 4096, SIZE > 0, inside the file): a bad range exits 64 with
            its reason and sends nothing.
            """)

    /// Any case, as the xattr takes it (`Shared`, `PRIVATE`).
    enum Target: String, ExpressibleByArgument, CaseIterable {
        case `private`, shared
        init?(argument: String) { self.init(rawValue: argument.lowercased()) }
    }

    @Argument(help: "private or shared.") var attribute: Target
    @Argument(help: "The gmem file.", completion: .file()) var file: String
    @Argument(help: "Byte offset (multiple of 4096; decimal, 0x hex, K/M/G/T suffix).") var offset: String
    @Argument(help: "Byte count (positive multiple of 4096).") var size: String
    @Flag(help: "Use the kernel's KVM_SET_MEMORY_ATTRIBUTES2 ioctl instead of the xattr.") var ioctl = false

    /// What a refusal means for a conversion.
    static let hints: [Int32: String] = [
        EACCES: "converting needs write permission on the file",
        EBADF: "the ioctl needs a descriptor open for writing",
        EINVAL: "the daemon refused the range (offset and size must be multiples of 4096, size non-zero, the range inside the file)",
        ENOTTY: "the file does not answer \(KVMMemoryAttributes2.ioctlName): not a gmem file",
        ENOMEM: "the conversion failed for memory (or an injected ENOMEM: gmemctl inject list FILE); nothing changed",
        EAGAIN: "a page in the range has references (gmemctl pin, GMEM_PIN_PAGES); drop them and retry; nothing changed",
        EBUSY: "a page in the range has references (gmemctl pin, GMEM_PIN_PAGES); drop them and retry; nothing changed",
        EINTR: "the conversion was interrupted (or an injected EINTR); retry; nothing changed",
    ]

    func run() throws {
        let (o, s, end) = try Input.fileRange(file, offset: offset, size: size)
        if ioctl {
            try MemoryAttributesIoctl.setAttributes(path: file, offset: o, size: s, private: attribute == .private, hints: Self.hints)
        } else {
            let value = GmemXattr.setAttributesValue(offset: o, size: s, attribute: attribute == .private ? .private : .shared)
            try Xattr.set(file, GmemXattr.setAttributes, value, hints: Self.hints)
        }
        let range = "[\(Units.hex(o)), \(Units.hex(end))) (\(Units.human(s)))"
        print("\(file): \(range) is now \(attribute.rawValue)\(ioctl ? " (via \(KVMMemoryAttributes2.ioctlName))" : "")")
    }
}
