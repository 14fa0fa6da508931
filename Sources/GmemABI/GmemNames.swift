/// How a gmemfs mount shows in `/proc/self/mountinfo`: mounted with `subtype=`\(``subtype``),
/// so its file system type is ``type``. Tools recognise a gmemfs mount by it.
public enum GmemFileSystem {
    public static let subtype = "gmemfs"
    public static let type = "fuse." + subtype
}

/// The file system's own names in the mount root. gmem file names cannot start with `.`
/// (``GmemFileName``), so these never collide with a file.
public enum GmemSpecialName {
    /// `MOUNTPOINT/.guest/NAME`: the guest's view (with `--guest-view`).
    public static let guest = ".guest"
    /// `MOUNTPOINT/.trace`: the live event trace (docs/trace.md).
    public static let trace = ".trace"
    /// `MOUNTPOINT/.maps/NAME`: a file's attribute map as a file, of any length.
    public static let maps = ".maps"
}
