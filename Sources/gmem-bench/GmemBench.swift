import ArgumentParser

/// `gmem-bench`: benchmarks of GmemCore. One subcommand per subject (`tree`; later `io`, ...).
@main
struct GmemBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gmem-bench",
        abstract: "Benchmarks for gmemfs components.",
        subcommands: [TreeBench.self, ConvertBench.self])
}
