/// This architecture's system call numbers for the calls gmemfs and `gmemctl run` look at
/// (the kernel's `arch/*/entry/syscalls` tables; arm64 uses the generic table, which has no
/// `open`). An architecture not listed here does not compile: add its table.
public enum SyscallNumber {
#if arch(x86_64)
    public static let read = 0, open: Int? = 2, mmap = 9, ioctl = 16, pread64 = 17, readv = 19
    public static let sendfile = 40, splice = 275, preadv = 295, openat = 257, copyFileRange = 326, preadv2 = 327
    public static let openat2 = 437
    public static let mremap = 25, mlock = 149, mlockall = 151, remapFilePages = 216, mlock2 = 325
#elseif arch(arm64)
    public static let read = 63, open: Int? = nil, mmap = 222, ioctl = 29, pread64 = 67, readv = 65
    public static let sendfile = 71, splice = 76, preadv = 69, openat = 56, copyFileRange = 285, preadv2 = 286
    public static let openat2 = 437
    public static let mremap = 216, mlock = 228, mlockall = 230, remapFilePages = 234, mlock2 = 284
#else
#error("LinuxProc: add this architecture's system call numbers")
#endif

    /// The read-family calls that copy a file's contents to the caller, with the index of
    /// their source-fd argument: read, pread64, readv, sendfile (in_fd is argument 1), splice,
    /// preadv, copy_file_range, preadv2.
    public static let readFamily: [Int: Int] = [
        read: 0, pread64: 0, readv: 0, sendfile: 1, splice: 0, preadv: 0, copyFileRange: 0, preadv2: 0,
    ]

    /// The calls that reach the kernel's `__mm_populate`, whose loop over a page retries a
    /// refused READ forever: mmap, mremap, mlock, mlockall, remap_file_pages, mlock2.
    public static let populateFamily: Set<Int> = [mmap, mremap, mlock, mlockall, remapFilePages, mlock2]
}

/// seccomp's `AUDIT_ARCH_*` value of this architecture (`seccomp_data.arch`).
public enum AuditArch {
#if arch(x86_64)
    public static let native: UInt32 = 0xC000_003E   // AUDIT_ARCH_X86_64
#elseif arch(arm64)
    public static let native: UInt32 = 0xC000_00B7   // AUDIT_ARCH_AARCH64
#endif
}
