import CLinuxSys
import Glibc

/// `KVM_SET_MEMORY_ATTRIBUTES2`, the kernel's guest_memfd conversion ioctl, which gmemfs files
/// answer too:
///
/// ```c
/// struct kvm_memory_attributes2 {
///         union { __u64 address; __u64 offset; };
///         __u64 size;
///         __u64 attributes;      /* KVM_MEMORY_ATTRIBUTE_PRIVATE (1ULL << 3) or 0 */
///         __u64 flags;           /* must be 0 */
///         __u64 error_offset;    /* out */
///         __u64 reserved[11];    /* must be 0 */
/// };
/// #define KVM_SET_MEMORY_ATTRIBUTES2 _IOWR(KVMIO /* 0xAE */, 0xd2, struct kvm_memory_attributes2)
/// ```
enum MemoryAttributesIoctl {
    /// `_IOWR(0xAE, 0xd2, 128 bytes)`.
    static let number: UInt = 0xC080_AED2
    static let privateBit: UInt64 = 1 << 3

    /// Converts `[offset, offset + size)` of the file at `path` (opened read-write: the ioctl
    /// needs a writable descriptor, EBADF otherwise).
    static func setAttributes(path: String, offset: UInt64, size: UInt64, private isPrivate: Bool,
                              hints: [Int32: String] = [:]) throws {
        let fd = open(path, O_RDWR)
        guard fd >= 0 else { throw SystemError("open \(path) for writing", hints: hints) }
        defer { close(fd) }
        var words = [UInt64](repeating: 0, count: 16)   // 16 x u64 = 128 bytes
        words[0] = offset.littleEndian
        words[1] = size.littleEndian
        words[2] = (isPrivate ? privateBit : 0).littleEndian
        let rc = words.withUnsafeMutableBytes { clinux_ioctl_ptr(fd, number, $0.baseAddress) }
        guard rc == 0 else {
            // EAGAIN, ENOMEM and EINTR copy the struct back with the page in error_offset.
            let code = errno
            let at = [EAGAIN, ENOMEM, EINTR].contains(code) ? " (error_offset \(Units.hex(UInt64(littleEndian: words[4]))))" : ""
            throw SystemError("ioctl KVM_SET_MEMORY_ATTRIBUTES2 on \(path)\(at)", errno: code, hints: hints)
        }
    }
}

/// gmemfs's page references, `GMEM_PIN_PAGES` / `GMEM_UNPIN_PAGES` (docs/xattr-interface.md):
///
/// ```c
/// struct gmem_page_reference {
///         __u64 offset;        /* multiple of 4096 */
///         __u64 size;          /* non-zero multiple of 4096 */
///         __u64 flags;         /* must be 0 */
///         __u64 reserved[5];   /* must be 0 */
/// };
/// #define GMEM_PIN_PAGES   _IOW('G', 0x01, struct gmem_page_reference)   /* 0x40404701 */
/// #define GMEM_UNPIN_PAGES _IOW('G', 0x02, struct gmem_page_reference)   /* 0x40404702 */
/// ```
///
/// A reference belongs to the open file it was taken through and ends with it.
enum PageReferenceIoctl {
    static let pin: UInt = 0x4040_4701
    static let unpin: UInt = 0x4040_4702

    /// Pins (or unpins) `[offset, offset + size)` through `fd`.
    static func call(_ command: UInt, fd: Int32, offset: UInt64, size: UInt64, path: String, hints: [Int32: String] = [:]) throws {
        var words: [UInt64] = [offset.littleEndian, size.littleEndian] + Array(repeating: 0, count: 6)   // 64 bytes
        let rc = words.withUnsafeMutableBytes { clinux_ioctl_ptr(fd, command, $0.baseAddress) }
        guard rc == 0 else {
            throw SystemError("ioctl \(command == pin ? "GMEM_PIN_PAGES" : "GMEM_UNPIN_PAGES") on \(path)", hints: hints)
        }
    }
}
