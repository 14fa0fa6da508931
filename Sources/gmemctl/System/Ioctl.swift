import CLinuxSys
import Glibc
import GmemABI

/// `KVM_SET_MEMORY_ATTRIBUTES2`, the kernel's guest_memfd conversion ioctl, which gmemfs files
/// answer too. Number and struct are ``KVMMemoryAttributes2``'s (the daemon's own).
enum MemoryAttributesIoctl {
    /// Converts `[offset, offset + size)` of the file at `path` (opened read-write: the ioctl
    /// needs a writable descriptor, EBADF otherwise).
    static func setAttributes(path: String, offset: UInt64, size: UInt64, private isPrivate: Bool,
                              hints: [Int32: String] = [:]) throws {
        let fd = open(path, O_RDWR)
        guard fd >= 0 else { throw SystemError("open \(path) for writing", hints: hints) }
        defer { close(fd) }
        var bytes = KVMMemoryAttributes2(offset: offset, size: size, attributes: GmemAttributeName(isPrivate: isPrivate).bits).encode()
        let number = UInt(KVMMemoryAttributes2.ioctlNumber)
        let rc = bytes.withUnsafeMutableBytes { clinux_ioctl_ptr(fd, number, $0.baseAddress) }
        guard rc == 0 else { throw SystemError("ioctl KVM_SET_MEMORY_ATTRIBUTES2 on \(path)", hints: hints) }
    }
}
