import ArgumentParser
import Foundation
import Glibc
import GmemABI

/// `gmemctl tour [MOUNTPOINT] [--no-pause]`: a guided demo of guest_memfd's private/shared
/// model for someone who has never heard of it. Every step explains itself, shows the exact
/// shell command, runs it, shows its real output and the file's map, and checks the outcome
/// against what the kernel's guest_memfd does. Exits non-zero if any step behaved differently.
struct TourCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tour",
        abstract: "A guided, self-checking demo of private and shared guest memory.",
        discussion: """
            Without MOUNTPOINT the tour mounts its own gmemfs (--guest-view,
            auto_unmount) on a temporary directory and always unmounts it at the end.
            With MOUNTPOINT it uses a running gmemfs mounted with --guest-view, and
            removes its demo file afterwards.
            """)

    @Argument(help: "A gmemfs mounted with --guest-view (default: mount a private one).", completion: .directory) var mountpoint: String?
    @Flag(name: .customLong("no-pause"), help: "Do not wait for Enter between steps.") var noPause = false
    @Option(help: "auto, always, never.") var color: ColorChoice = .auto

    func run() throws {
        // SIGBUS is the point of two steps: no core files for them.
        var noCore = rlimit(rlim_cur: 0, rlim_max: 0)
        getrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &noCore); noCore.rlim_cur = 0
        setrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &noCore)

        if let mountpoint { _ = try GmemPath(mountpoint, .mountRoot) }
        var own: TourMount?
        if mountpoint == nil {
            TourMount.installCleanup()
            own = try TourMount()
        }
        defer { own?.unmount() }
        let mnt = mountpoint ?? own!.mountpoint
        var tour = try Tour(mountpoint: mnt, terminal: .stdout(color: color),
                            pause: !noPause && isatty(STDIN_FILENO) == 1, ownMount: own != nil)
        let ok = tour.run()
        if !ok { throw ExitCode.failure }
    }
}
