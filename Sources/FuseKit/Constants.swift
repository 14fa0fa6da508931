import CFuse

/// Linux constants handlers need that Swift's Glibc module does not export (GNU extensions).
public enum LinuxConstants {
    /// `FALLOC_FL_KEEP_SIZE`.
    public static let fallocKeepSize = Int32(FALLOC_FL_KEEP_SIZE)
    /// `FALLOC_FL_PUNCH_HOLE`.
    public static let fallocPunchHole = Int32(FALLOC_FL_PUNCH_HOLE)
    /// `SEEK_DATA` and `SEEK_HOLE`.
    public static let seekData: Int32 = 3
    public static let seekHole: Int32 = 4
    /// `O_DIRECT` (x86-64 and arm64 generic value differ; this is the asm-generic/x86 one).
    #if arch(x86_64)
    public static let openDirect: Int32 = 0o40000
    #else
    public static let openDirect: Int32 = 0o200000
    #endif
}
