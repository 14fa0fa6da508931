import ArgumentParser

/// `gmemctl`: a thin client of a mounted gmemfs. Every subcommand speaks only the file
/// system's public interface (the `user.gmem.*` extended attributes and the kernel's
/// `KVM_SET_MEMORY_ATTRIBUTES2` ioctl), as any program would.
@main
struct Gmemctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gmemctl",
        abstract: "Create, convert and draw guest_memfd-like files on a gmemfs mount.",
        discussion: """
            Examples:
              gmemctl create /mnt/gmem demo 64K --flags mmap
              gmemctl convert shared /mnt/gmem/demo 0 16K
              gmemctl map /mnt/gmem/demo
              gmemctl tour            # a ten-minute guided demo on a private mount
            """,
        version: "0.1.0",
        subcommands: [CreateCommand.self, ConvertCommand.self, MapCommand.self, StatsCommand.self,
                      WatchCommand.self, PeekCommand.self, TourCommand.self])
}
