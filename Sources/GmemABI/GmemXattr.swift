import CGmemABI

/// The extended-attribute interface (docs/xattr-interface.md). The values are
/// `include/gmem_abi.h`'s, which the C test programs include too.
///
/// On the mount root: ``create`` (set) · ``stats`` (get).
/// On a gmem file: ``setAttributes``, ``inject`` (set) · ``attributes``, ``window(start:end:)``,
/// ``flags``, ``stats``, ``inject`` (get).
public enum GmemXattr {
    /// Every name of the interface starts with it; other `user.gmem.*` names are EINVAL to set
    /// and ENODATA to get.
    public static let prefix = GMEM_XATTR_PREFIX
    /// Set on the root: `NAME SIZE [FLAGS]` (``GmemNumber`` sizes, ``GmemCreateFlag`` names).
    public static let create = GMEM_XATTR_CREATE
    /// Set on a file: `OFFSET SIZE ATTRIBUTES` (``setAttributesValue(offset:size:attribute:)``).
    public static let setAttributes = GMEM_XATTR_SET_ATTRIBUTES
    /// Get on a file: the whole map as ``AttributeLine``s.
    public static let attributes = GMEM_XATTR_ATTRIBUTES
    /// Get on a file: the creation flags' names, space-separated.
    public static let flags = GMEM_XATTR_FLAGS
    /// Get on a file or the root: `key=value` lines.
    public static let stats = GMEM_XATTR_STATS
    /// Set on a file: one fault to arm (``injectValue(_:offset:count:range:)``) or
    /// ``injectClear``; get: the armed faults, one per line, in the same grammar.
    public static let inject = GMEM_XATTR_INJECT
    /// The ``inject`` value that disarms every fault of the file.
    public static let injectClear = "clear"
    /// The largest value the VFS passes (the kernel's `XATTR_SIZE_MAX`, 64 KiB); a longer
    /// value is E2BIG.
    public static let sizeMax = Int(GMEM_XATTR_SIZE_MAX)

    /// Readable names on a file, as listxattr reports them.
    public static let fileReadable = [attributes, flags, stats, inject]
    /// Readable names on the root.
    public static let rootReadable = [stats]

    /// `user.gmem.attributes:START-END`: the map of bytes `[start, end)` (lowercase hex).
    public static func window(start: UInt64, end: UInt64) -> String {
        attributes + ":" + String(start, radix: 16) + "-" + String(end, radix: 16)
    }

    /// The window a name asks for: nil when `name` is not `user.gmem.attributes:…`, else the
    /// bounds, validated (only hex digits, `START < END`).
    public static func parseWindow(name: String) throws(GmemABIError) -> (start: UInt64, end: UInt64)? {
        let head = attributes + ":"
        guard name.hasPrefix(head) else { return nil }
        return try parseWindow(name.dropFirst(head.count))
    }

    /// `START-END` (hex byte offsets, END exclusive, `START < END`).
    public static func parseWindow(_ text: Substring) throws(GmemABIError) -> (start: UInt64, end: UInt64) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        // Only hex digits: UInt64(_:radix:) alone also takes a leading "+".
        guard parts.count == 2, parts.allSatisfy({ $0.allSatisfy(\.isHexDigit) }),
              let start = UInt64(parts[0], radix: 16), let end = UInt64(parts[1], radix: 16), start < end else {
            throw .malformedWindow(String(text))
        }
        return (start, end)
    }

    /// The ``setAttributes`` value: `OFFSET SIZE ATTRIBUTE`, decimal numbers.
    public static func setAttributesValue(offset: UInt64, size: UInt64, attribute: GmemAttributeName) -> String {
        "\(offset) \(size) \(attribute.rawValue)"
    }

    /// The ``inject`` value arming one fault: `FAILURE [OFFSET] [count N] [range OFFSET SIZE]`,
    /// decimal numbers. `offset` is the page an `eagain` reports (required for it, refused for
    /// the others); `range` is for `enomem` and `eintr` only (the daemon checks both).
    public static func injectValue(_ failure: GmemInjectedFailure, offset: UInt64? = nil, count: UInt64? = nil,
                                   range: (offset: UInt64, size: UInt64)? = nil) -> String {
        var words = [failure.rawValue]
        if let offset { words.append(String(offset)) }
        if let count { words += ["count", String(count)] }
        if let range { words += ["range", String(range.offset), String(range.size)] }
        return words.joined(separator: " ")
    }

    /// The ``create`` value: `NAME SIZE[ FLAGS]`, FLAGS a comma list of names, left out when empty.
    public static func createValue(name: String, size: UInt64, flags: [GmemCreateFlag]) -> String {
        let words = [name, String(size)] + (flags.isEmpty ? [] : [flags.map(\.rawValue).joined(separator: ",")])
        return words.joined(separator: " ")
    }
}

/// The failures ``GmemXattr/inject`` can arm, by their interface names.
public enum GmemInjectedFailure: String, CaseIterable, Sendable {
    /// ENOMEM, `error_offset` = the request's start (the kernel's failed `mas_preallocate`).
    case enomem
    /// EAGAIN, `error_offset` = the armed page (a reference on it the caller cannot see).
    case eagain
    /// EINTR, `error_offset` = the request's start.
    case eintr
}

/// The words for a page's attributes in the interface's text (map lines, set_attributes values).
public enum GmemAttributeName: String, CaseIterable, Sendable {
    case `private`, shared

    /// `KVM_MEMORY_ATTRIBUTE_PRIVATE` (1 << 3): the only attribute bit.
    public static let privateBit: UInt64 = KVM_MEMORY_ATTRIBUTE_PRIVATE

    public init(isPrivate: Bool) { self = isPrivate ? .private : .shared }
    public var isPrivate: Bool { self == .private }
    /// The attribute bits: ``privateBit`` or 0.
    public var bits: UInt64 { isPrivate ? Self.privateBit : 0 }
}

/// Creation flags (`KVM_CREATE_GUEST_MEMFD`'s `flags`), by their interface names, in bit order.
public enum GmemCreateFlag: String, CaseIterable, Sendable {
    /// `GUEST_MEMFD_FLAG_MMAP` (bit 0): the host may mmap(MAP_SHARED) the file.
    case mmap
    /// `GUEST_MEMFD_FLAG_INIT_SHARED` (bit 1): every page starts shared.
    case initShared = "init-shared"

    public var bit: UInt64 {
        switch self {
        case .mmap: GUEST_MEMFD_FLAG_MMAP
        case .initShared: GUEST_MEMFD_FLAG_INIT_SHARED
        }
    }

    /// Every known bit; any other is EINVAL.
    public static let allBits: UInt64 = allCases.reduce(0) { $0 | $1.bit }

    /// The flags of `bits`, in bit order (unknown bits are left out).
    public static func flags(bits: UInt64) -> [GmemCreateFlag] { allCases.filter { bits & $0.bit != 0 } }

    /// FLAGS as the interface writes them: a comma list of names (`mmap,init-shared`; any case,
    /// `_` for `-`, repeats allowed) or a number in the ``GmemNumber`` grammar (bit 0 mmap,
    /// bit 1 init-shared). Returns the flags in bit order; unknown names or bits are refused.
    public static func parseList<S: StringProtocol>(_ text: S) throws(GmemABIError) -> [GmemCreateFlag] {
        if let first = text.first, first.isNumber {
            let bits = try GmemNumber.parse(text)
            guard bits & ~allBits == 0 else { throw .unknownFlagBits(String(text)) }
            return flags(bits: bits)
        }
        var bits: UInt64 = 0
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let flag = GmemCreateFlag(rawValue: part.lowercased().replacing("_", with: "-")) else { throw .unknownFlag(String(part)) }
            bits |= flag.bit
        }
        return flags(bits: bits)
    }

    /// `mmap,init-shared` (the create value's and the `-o file=` option's spelling), or `none`.
    public static func word(_ flags: [GmemCreateFlag]) -> String {
        flags.isEmpty ? "none" : flags.map(\.rawValue).joined(separator: ",")
    }
}

/// Size of a page in bytes; every offset and size of a conversion or hole punch is a multiple of it.
public let gmemPageSize: UInt64 = GMEM_PAGE_SIZE
/// log2 of ``gmemPageSize``.
public let gmemPageShift: UInt64 = GMEM_PAGE_SHIFT

/// The rule for a file's size, KVM_CREATE_GUEST_MEMFD's (`size <= 0 || !PAGE_ALIGNED(size)` is
/// EINVAL, with size a `loff_t`): a positive multiple of the page size below 2^63. The daemon
/// (`user.gmem.create`, `--file`) and `gmemctl run` (the ioctl itself) both apply it.
public enum GmemFileSize {
    /// Why a size is refused.
    public enum Problem: Equatable, Sendable {
        /// Zero, or not a multiple of the page size.
        case notPositivePageMultiple
        /// 2^63 or more: negative as a `loff_t`.
        case tooLarge
    }

    /// What is wrong with `size`, nil when it is a valid size.
    public static func problem(_ size: UInt64) -> Problem? {
        guard size > 0, size % gmemPageSize == 0 else { return .notPositivePageMultiple }
        guard size <= UInt64(Int64.max) else { return .tooLarge }
        return nil
    }
}

/// The rule for a gmem file's name (`user.gmem.create`'s NAME), checked by the daemon and by
/// gmemctl alike: 1-255 bytes of UTF-8; no `/`, space (the value's word separator), C0 or C1
/// control character or DEL; no leading `.` (the file system's own names: ``GmemSpecialName``).
public enum GmemFileName {
    public static let maxBytes = 255

    /// Why a name is refused.
    public enum Problem: Equatable, Sendable {
        case length
        case reservedPrefix
        case forbiddenCharacter
    }

    /// What is wrong with `name`, nil when it is a valid name.
    public static func problem(_ name: String) -> Problem? {
        guard !name.isEmpty, name.utf8.count <= maxBytes else { return .length }
        guard !name.hasPrefix(".") else { return .reservedPrefix }
        guard !name.unicodeScalars.contains(where: { $0 == "/" || $0.value <= 0x20 || (0x7f...0x9f).contains($0.value) }) else {
            return .forbiddenCharacter
        }
        return nil
    }
}
