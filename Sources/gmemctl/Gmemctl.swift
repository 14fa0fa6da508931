import ArgumentParser
import Glibc

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
              gmemctl trace /mnt/gmem   # live events (conversions, refused accesses, ...)
              gmemctl pin /mnt/gmem/demo 0 4K -- COMMAND   # conversions to private: EAGAIN
              gmemctl inject enomem /mnt/gmem/demo          # the next conversion fails
              gmemctl run -- ./vmm-test  # kernel-uAPI guest_memfd code on gmemfs
              gmemctl tour            # a ten-minute guided demo on a private mount

            For scripts: stats, map and watch take --json (one JSON object per
            line; byte offsets and sizes as numbers; shapes in each --help).

            Every path must be on a gmemfs mount (checked first; nothing is sent
            elsewhere). Errors are one line on stderr, starting with 'gmemctl:'.

            Exit status:
              0    success
              1    the operation failed: the path is not on a gmemfs mount,
                   the daemon refused the request (errno and reason printed),
                   or a system call failed
              64   bad input (EX_USAGE), nothing was sent: a malformed or
                   negative number, an offset or size not a multiple of 4096,
                   a range past the end of the file, an unknown flag, a
                   missing argument
              135  peek was killed by SIGBUS: it touched a private page
              N    pin -- COMMAND, run -- COMMAND: COMMAND's own status
                   (128+N for signal N)
            """,
        version: "0.1.0",
        subcommands: [CreateCommand.self, ConvertCommand.self, MapCommand.self, StatsCommand.self,
                      WatchCommand.self, PeekCommand.self, TraceCommand.self, PinCommand.self, InjectCommand.self,
                      RunCommand.self, TourCommand.self])

    /// ArgumentParser's entry point with gmemctl's error contract: every error is one line
    /// `gmemctl: ...` on stderr; bad input exits 64, a failed operation 1 (see ``ExitStatus``).
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if let negative = Input.negativeNumber(in: arguments) {
            if let option = negative.option {
                fail(UsageFailure("\(option) '\(negative.value)' is negative: \(option) takes no negative value"))
            }
            fail(UsageFailure("'\(negative.value)' is negative: offsets, sizes and counts are ≥ 0 (a file name starting with '-' goes after '--')"))
        }
        var command: ParsableCommand
        do {
            command = try parseAsRoot(arguments)
        } catch {
            // --help, --version and `help` exit cleanly through ArgumentParser.
            guard exitCode(for: error) != .success else { exit(withError: error) }
            printError("gmemctl: " + oneLine(message(for: error)) + usageHint(fullMessage(for: error, columns: 1000)))
            Glibc.exit(ExitStatus.usage)
        }
        do {
            try command.run()
        } catch {
            fail(error)
        }
    }

    /// Prints `error` as one line and exits with its status.
    static func fail(_ error: Error) -> Never {
        switch error {
        case let e as UsageFailure:
            printError("gmemctl: " + oneLine(e.description))
            Glibc.exit(ExitStatus.usage)
        case let e as ExitCode:
            Glibc.exit(e.rawValue)
        case is SystemError, is Failure:
            printError("gmemctl: " + oneLine(String(describing: error)))
            Glibc.exit(ExitStatus.failure)
        default:
            // `gmemctl help` and a bare `gmemctl` print help through ArgumentParser; any other
            // ArgumentParser error keeps its status (64 for validation errors).
            let code = exitCode(for: error)
            guard code != .success else { exit(withError: error) }
            printError("gmemctl: " + oneLine(message(for: error)))
            Glibc.exit(code.rawValue)
        }
    }

    /// `; usage: gmemctl convert <attribute> ...` from ArgumentParser's full message, if any.
    static func usageHint(_ full: String) -> String {
        guard let usage = full.split(separator: "\n").first(where: { $0.hasPrefix("Usage: ") }) else { return "" }
        return "; usage: " + usage.dropFirst("Usage: ".count)
    }

    static func oneLine(_ s: String) -> String {
        s.split(whereSeparator: \.isNewline).map { String($0.drop(while: \.isWhitespace)) }.joined(separator: " ")
    }
}
