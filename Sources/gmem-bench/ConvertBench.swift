import ArgumentParser
import CLinuxSys
import GmemABI
#if canImport(Glibc)
import Glibc
#endif

/// Conversion round trips on a mounted file, with and without `cat MOUNTPOINT/.trace` readers
/// attached (docs/performance.md, "Event trace").
struct ConvertBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "4 KiB conversion round trips (setxattr) on a mounted gmem file: p50/p90, with and without trace readers.",
        discussion: """
            Alternates rounds without and with READERS `cat MOUNTPOINT/.trace > /dev/null`
            processes attached (ABAB…), COUNT conversions per round (the same pattern as
            Scripts/io-compare.sh: page i/2 mod 256, private then shared), and prints the medians
            of the per-round p50 and p90 in microseconds. The file must have at least 256 pages.
            """)

    @Argument(help: "A gmem file on a mount (its mount point's .trace is read).") var file: String
    @Option(help: "Conversions per round.") var count = 2000
    @Option(help: "Rounds of each kind.") var rounds = 5
    @Option(help: "Trace readers in the 'with' rounds.") var readers = 1

    func validate() throws {
        guard count >= 10, rounds >= 1, readers >= 0 else { throw ValidationError("--count ≥ 10, --rounds ≥ 1, --readers ≥ 0") }
    }

    func run() throws {
        guard let resolved = realpath(file, nil) else { throw ValidationError("\(file): \(String(cString: strerror(errno)))") }
        let path = String(cString: resolved)
        free(resolved)
        let mount = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        var without: [(Double, Double)] = [], with: [(Double, Double)] = []
        for _ in 0..<rounds {
            without.append(try Self.round(path, count: count))
            let pids = try (0..<readers).map { _ in try Self.spawnCat(mount + "/" + GmemSpecialName.trace) }
            usleep(100_000)   // let the readers open the trace
            with.append(try Self.round(path, count: count))
            for p in pids { kill(p, SIGKILL); var st: Int32 = 0; waitpid(p, &st, 0) }
        }
        func med(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
        let a = (med(without.map(\.0)), med(without.map(\.1))), b = (med(with.map(\.0)), med(with.map(\.1)))
        print("readers=0 conv4k_p50_us=\(f1(a.0)) conv4k_p90_us=\(f1(a.1))")
        print("readers=\(readers) conv4k_p50_us=\(f1(b.0)) conv4k_p90_us=\(f1(b.1)) p50_ratio=\(f2(b.0 / a.0))")
    }

    /// One round: `count` conversions; (p50, p90) in µs.
    static func round(_ path: String, count: Int) throws -> (Double, Double) {
        var lat: [Double] = []
        lat.reserveCapacity(count)
        for i in 0..<count {
            let value = Array("\(i / 2 % 256 * 4096) 4096 \(i % 2 == 1 ? "shared" : "private")".utf8)
            let t = now()
            guard setxattr(path, "user.gmem.set_attributes", value, value.count, 0) == 0 else {
                throw ValidationError("setxattr \(path): \(String(cString: strerror(errno)))")
            }
            lat.append(now() - t)
        }
        lat.sort()
        return (lat[count / 2], lat[count * 9 / 10])
    }

    static func spawnCat(_ trace: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("cat"), strdup(trace), nil]
        defer { argv.forEach { free($0) } }
        let rc = posix_spawnp(&pid, "cat", &actions, nil, argv, environ)
        guard rc == 0 else { throw ValidationError("cannot start cat: \(String(cString: strerror(rc)))") }
        return pid
    }

    static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) * 1e6 + Double(t.tv_nsec) / 1e3
    }
}

private func f1(_ v: Double) -> String { String(Double(Int((v * 10).rounded())) / 10) }
private func f2(_ v: Double) -> String { String(Double(Int((v * 100).rounded())) / 100) }
