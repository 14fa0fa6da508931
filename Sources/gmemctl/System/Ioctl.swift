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
        guard rc == 0 else {
            // EAGAIN, ENOMEM and EINTR copy the struct back with the page in error_offset.
            let code = errno
            let back = bytes.withUnsafeBytes { try? KVMMemoryAttributes2.decode($0) }
            let at = [EAGAIN, ENOMEM, EINTR].contains(code) ? back.map { " (error_offset \(Units.hex($0.errorOffset)))" } ?? "" : ""
            throw SystemError("ioctl KVM_SET_MEMORY_ATTRIBUTES2 on \(path)\(at)", errno: code, hints: hints)
        }
    }
}

/// gmemfs's page references, `GMEM_PIN_PAGES` / `GMEM_UNPIN_PAGES` (docs/xattr-interface.md);
/// numbers and struct are ``GmemPageReference``'s. A reference belongs to the open file it
/// was taken through and ends with it.
enum PageReferenceIoctl {
    static let pin = UInt(GmemPageReference.pinNumber)
    static let unpin = UInt(GmemPageReference.unpinNumber)

    /// Pins (or unpins) `[offset, offset + size)` through `fd`.
    static func call(_ command: UInt, fd: Int32, offset: UInt64, size: UInt64, path: String, hints: [Int32: String] = [:]) throws {
        var bytes = GmemPageReference(offset: offset, size: size).encode()
        let rc = bytes.withUnsafeMutableBytes { clinux_ioctl_ptr(fd, command, $0.baseAddress) }
        guard rc == 0 else {
            throw SystemError("ioctl \(command == pin ? GmemPageReference.pinName : GmemPageReference.unpinName) on \(path)", hints: hints)
        }
    }
}
