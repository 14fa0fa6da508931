import ArgumentParser

/// `gmemctl convert private|shared FILE OFFSET SIZE [--ioctl]`.
struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a page-aligned range to private or shared (contents are kept).",
        discussion: """
            By default through the xattr (setxattr user.gmem.set_attributes "OFFSET SIZE ATTR");
            with --ioctl through KVM_SET_MEMORY_ATTRIBUTES2 (0xC080AED2), as a VMM would.
            """)

    enum Target: String, ExpressibleByArgument, CaseIterable { case `private`, shared }

    @Argument(help: "private or shared.") var attribute: Target
    @Argument(help: "The gmem file.") var file: String
    @Argument(help: "Byte offset (multiple of 4096; decimal, 0x hex, K/M/G suffix).") var offset: String
    @Argument(help: "Byte count (multiple of 4096).") var size: String
    @Flag(help: "Use the kernel's KVM_SET_MEMORY_ATTRIBUTES2 ioctl instead of the xattr.") var ioctl = false

    func run() throws {
        if ioctl {
            guard let o = Units.parse(offset) else { throw UsageFailure("offset '\(offset)' is not a number") }
            guard let s = Units.parse(size) else { throw UsageFailure("size '\(size)' is not a number") }
            try MemoryAttributesIoctl.setAttributes(path: file, offset: o, size: s, private: attribute == .private)
        } else {
            // The daemon parses and validates: this stays a thin client of the xattr.
            try Xattr.set(file, Xattr.setAttributes, "\(offset) \(size) \(attribute.rawValue)")
        }
        let range: String
        if let o = Units.parse(offset), let s = Units.parse(size) {
            range = "[\(Units.hex(o)), \(Units.hex(o &+ s))) (\(Units.human(s)))"
        } else {
            range = "\(offset) +\(size)"
        }
        print("\(file): \(range) is now \(attribute.rawValue)\(ioctl ? " (via KVM_SET_MEMORY_ATTRIBUTES2)" : "")")
    }
}
