/// How closely host access to a file follows the kernel's guest_memfd.
///
/// The kernel's guest_memfd has no `read`, `write`, `llseek` or `fsync` and refuses every
/// `setattr`; that would leave `cat`, `dd`, `cp` and `du` with nothing to do. The default keeps
/// them working; `--kernel-compat` gives the kernel's answers wherever FUSE lets the daemon
/// decide. docs/semantics.md lists both modes' differences from the kernel.
public enum Fidelity: Sendable, Equatable {
    /// The default: `read`/`write`/`lseek` on shared pages, `fsync`, `chmod`/`chown`/`touch`
    /// succeed, and `st_blocks` counts allocated pages.
    case tools
    /// The kernel's answers: `read`/`write` EINVAL, `lseek`/`pread`/`pwrite` ESPIPE, `fsync`
    /// and every attribute change EINVAL, `st_blocks` 0.
    case kernel
}

// The rules that depend on the fidelity (and the setattr rules, which mix both).
extension Fidelity {
    /// setattr (`kvm_gmem_setattr` for files). Rules, in order:
    /// - a size change (truncate): EISDIR on a directory, EINVAL on a file (the size is fixed);
    /// - `.kernel`, host file: EINVAL for every change;
    /// - the guest view (`.guest` and its files) and the special nodes (`.trace`, `.maps` and
    ///   its files): owner and mode are fixed (EPERM); times are accepted and ignored.
    public func checkSetattr(_ changes: AttributeChanges, on node: NodeKind) throws(GmemError) {
        if changes.size {
            if node.isDirectory { throw .isDirectory("cannot truncate a directory") }
            throw .invalidArgument("the size of a gmem file is fixed")
        }
        if node == .hostFile, self == .kernel { throw .invalidArgument("guest_memfd refuses every attribute change") }
        if node.hasFixedOwnerAndMode, changes.ownerOrMode {
            throw .notPermitted("the owner and mode of .guest, .trace and .maps are fixed")
        }
    }

    /// `read(2)` of the host file. `.kernel`: EINVAL (a guest_memfd has no read), except the
    /// page cache's own page-ins of a buffered file (a fault, not a `read(2)`: `byReadCall`
    /// tells whether the requester is in a read-family call on this file).
    public func checkHostRead(buffered: Bool, byReadCall: () -> Bool) throws(GmemError) {
        guard self == .kernel else { return }
        if !buffered || byReadCall() { throw .invalidArgument("guest_memfd has no read") }
    }

    /// `write(2)` of the host file. `.kernel`: EINVAL (a guest_memfd has no write), except the
    /// write-back of pages dirtied through a shared mapping (`writepage`).
    public func checkHostWrite(writepage: Bool) throws(GmemError) {
        if self == .kernel, !writepage { throw .invalidArgument("guest_memfd has no write") }
    }

    /// `fsync(2)` (also `msync(MS_SYNC)`) of the host file. `.kernel`: EINVAL; `.tools`:
    /// success (the memory has no backing store to flush).
    public func checkHostFsync() throws(GmemError) {
        if self == .kernel { throw .invalidArgument("guest_memfd has no fsync") }
    }

    /// Whether an open host file may seek. `.kernel`: no (a guest_memfd has no llseek, so
    /// `lseek`, `pread` and `pwrite` are ESPIPE, which the kernel answers itself).
    public var hostFileSeekable: Bool { self == .tools }

    /// `st_blocks` of the host file: `.kernel` reports 0 (the guest_memfd inode never counts
    /// blocks), `.tools` the allocated 512-byte blocks.
    public func hostBlocks(allocatedBytes: UInt64) -> Int {
        self == .kernel ? 0 : Int(allocatedBytes / 512)
    }
}

/// Which node a metadata request addresses (the rules differ by kind, not by name).
public enum NodeKind: Sendable, Equatable {
    /// The mount root (the VM fd).
    case root
    /// `MOUNTPOINT/.guest`.
    case guestDirectory
    /// A gmem file as the host sees it.
    case hostFile
    /// A gmem file through `.guest`.
    case guestFile
    /// `MOUNTPOINT/.maps`.
    case specialDirectory
    /// `MOUNTPOINT/.trace` and `MOUNTPOINT/.maps/NAME`: the file system's own read-only files.
    case specialFile

    public var isDirectory: Bool { self == .root || self == .guestDirectory || self == .specialDirectory }

    /// The file system's own view of the memory and its special nodes: their owner and mode
    /// never change.
    public var hasFixedOwnerAndMode: Bool { self != .root && self != .hostFile }
}

/// Which parts of a node a setattr changes (the parts whose rules differ).
public struct AttributeChanges: Sendable, Equatable {
    public var size: Bool
    public var ownerOrMode: Bool
    public init(size: Bool, ownerOrMode: Bool) { self.size = size; self.ownerOrMode = ownerOrMode }
}
