import GmemABI

/// Size of a page in bytes; every offset and size of a conversion or hole punch is a multiple of it.
public let pageSize: UInt64 = gmemPageSize
let pageShift: UInt64 = gmemPageShift

/// Flags given at creation (`KVM_CREATE_GUEST_MEMFD`'s `flags`).
public struct GmemFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    /// `GUEST_MEMFD_FLAG_MMAP`: the host may mmap(MAP_SHARED) the file.
    public static let mmap = GmemFlags(rawValue: GmemCreateFlag.mmap.bit)
    /// `GUEST_MEMFD_FLAG_INIT_SHARED`: every page starts shared (otherwise private).
    public static let initShared = GmemFlags(rawValue: GmemCreateFlag.initShared.bit)
    public static let all: GmemFlags = [.mmap, .initShared]

    public init(_ flags: [GmemCreateFlag]) { rawValue = flags.reduce(0) { $0 | $1.bit } }

    /// The flags by their interface names, in bit order.
    public var createFlags: [GmemCreateFlag] { GmemCreateFlag.flags(bits: rawValue) }

    /// Space-separated names, empty when none (the `user.gmem.flags` value).
    public var description: String { createFlags.map(\.rawValue).joined(separator: " ") }
}

/// Per-page memory attributes (`KVM_MEMORY_ATTRIBUTE_*`).
public struct MemoryAttributes: OptionSet, Sendable, Hashable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    /// `KVM_MEMORY_ATTRIBUTE_PRIVATE` (1 << 3): only the guest may access the page.
    public static let `private` = MemoryAttributes(rawValue: GmemAttributeName.privateBit)
    /// No attribute bits: the page is shared with the host.
    public static let shared: MemoryAttributes = []
    /// Every bit this implementation knows; any other bit is EINVAL.
    public static let supported: MemoryAttributes = [.private]

    public var isPrivate: Bool { contains(.private) }
    /// `private` or `shared`.
    public var name: String { attributeName.rawValue }
    /// The word for these attributes in the interface's text.
    public var attributeName: GmemAttributeName { GmemAttributeName(isPrivate: isPrivate) }
}
