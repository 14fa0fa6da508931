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
