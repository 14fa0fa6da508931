import GmemABI

/// A validated conversion request: page-aligned, non-empty, inside the file.
public struct ConversionRequest: Equatable, Sendable {
    public let offset: UInt64
    public let size: UInt64
    public let attributes: MemoryAttributes

    /// The pages the request covers (``offset`` and ``size`` stay bytes).
    public var pages: PageRange { PageRange(coveringOffset: offset, size: size) }

    /// Validates in the kernel's order (`kvm_gmem_set_attributes`): unknown attribute bits,
    /// size 0 or `offset + size` overflow, misalignment, then bounds (`offset >= fileSize` or
    /// `offset + size > fileSize`). All failures are EINVAL.
    public init(offset: UInt64, size: UInt64, attributes: UInt64, fileSize: UInt64) throws(GmemError) {
        guard attributes & ~MemoryAttributes.supported.rawValue == 0 else {
            throw .invalidArgument("0x" + String(attributes, radix: 16) + " has unknown attribute bits")
        }
        let (end, overflow) = offset.addingReportingOverflow(size)
        guard size != 0, !overflow else { throw .invalidArgument("size is 0 or offset + size overflows") }
        guard offset % pageSize == 0, size % pageSize == 0 else { throw .invalidArgument("offset and size must be multiples of 4096") }
        guard offset < fileSize, end <= fileSize else { throw .invalidArgument("range ends past the end of the file") }
        self.offset = offset; self.size = size; self.attributes = MemoryAttributes(rawValue: attributes)
    }
}

extension KVMMemoryAttributes2 {
    /// Validates as `kvm_gmem_set_attributes` does: flags ≠ 0 or any reserved word ≠ 0 → EINVAL,
    /// then the checks of ``ConversionRequest``.
    public func request(fileSize: UInt64) throws(GmemError) -> ConversionRequest {
        guard flags == 0 else { throw .invalidArgument("flags must be 0") }
        guard reserved.allSatisfy({ $0 == 0 }) else { throw .invalidArgument("reserved words must be 0") }
        return try ConversionRequest(offset: offset, size: size, attributes: attributes, fileSize: fileSize)
    }
}

extension GmemPageReference {
    /// Validates: flags ≠ 0 or a reserved word ≠ 0, then size 0, overflow, misalignment or a range
    /// not inside the file (the checks of ``ConversionRequest``) → EINVAL. Returns the pages.
    public func pages(fileSize: UInt64) throws(GmemError) -> PageRange {
        guard flags == 0 else { throw .invalidArgument("flags must be 0") }
        guard reserved.allSatisfy({ $0 == 0 }) else { throw .invalidArgument("reserved words must be 0") }
        return try ConversionRequest(offset: offset, size: size, attributes: 0, fileSize: fileSize).pages
    }
}

extension AccessMode {
    /// A conversion changes the file: like `write(2)` it needs a file opened for writing
    /// (EBADF otherwise, as `write(2)` answers). gmemfs's own rule: a guest_memfd is always open
    /// read-write and cannot be reopened, so the kernel never meets a read-only descriptor.
    /// Read-only and `O_ACCMODE` opens (Linux gives the latter neither read nor write access)
    /// are refused.
    public func checkConversion() throws(GmemError) {
        guard self == .writeOnly || self == .readWrite else {
            throw .badHandle("a conversion needs a file opened for writing")
        }
    }
}

/// Whether the conversion interface exists: the kernel's `kvm.gmem_in_place_conversion` module
/// parameter (read-only; off on arm64 and on x86 builds without a confidential-VM type).
/// `gmemfs --no-in-place` plays a kernel where it is off, so that a VMM's fallback path can be
/// tested; nothing but the conversion changes.
public enum InPlaceConversion: Sendable, Equatable {
    case enabled
    case disabled

    /// Where a conversion request came from (each has its own errno for "no such operation").
    public enum Interface: Sendable, Equatable { case ioctl, xattr }

    /// `.disabled`: `KVM_SET_MEMORY_ATTRIBUTES2` is ENOTTY, as `kvm_gmem_ioctl` answers before
    /// it looks at the argument; `user.gmem.set_attributes` is EOPNOTSUPP, setxattr's "this
    /// attribute cannot be set here" (ENOTTY is no setxattr errno, and EINVAL would blame the
    /// value). Checked before anything else about the request.
    public func checkConversion(via interface: Interface) throws(GmemError) {
        guard self == .disabled else { return }
        switch interface {
        case .ioctl: throw .unknownIoctl(KVMMemoryAttributes2.ioctlNumber)
        case .xattr: throw .notSupported("in-place conversion is off (--no-in-place)")
        }
    }
}
