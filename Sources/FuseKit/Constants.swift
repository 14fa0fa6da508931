import CLinuxSys

/// Linux constants handlers need that Swift's Glibc module does not export (GNU extensions),
/// from the one header that spells them out (CLinuxSys).
public enum LinuxConstants {
    /// `FALLOC_FL_KEEP_SIZE`.
    public static let fallocKeepSize = Int32(FALLOC_FL_KEEP_SIZE)
    /// `FALLOC_FL_PUNCH_HOLE`.
    public static let fallocPunchHole = Int32(FALLOC_FL_PUNCH_HOLE)
    /// `SEEK_DATA` and `SEEK_HOLE`.
    public static let seekData = Int32(CLINUX_SEEK_DATA)
    public static let seekHole = Int32(CLINUX_SEEK_HOLE)
    /// `O_DIRECT`.
    public static let openDirect = Int32(CLINUX_O_DIRECT)
}
