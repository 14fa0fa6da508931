import CLinuxSys

/// Linux constants handlers need that Swift's Glibc module does not export (GNU extensions),
/// from the one header that spells them out (CLinuxSys).
public enum LinuxConstants {
    /// `O_DIRECT`.
    public static let openDirect = Int32(CLINUX_O_DIRECT)
}
