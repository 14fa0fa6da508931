import ArgumentParser
import Glibc
import GmemABI

/// `gmemctl inject enomem|eintr|eagain|clear|list FILE ...`: arms conversion failures
/// (setxattr `user.gmem.inject`) or lists them.
struct InjectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inject",
        abstract: "Make the next conversions of a file fail (ENOMEM, EAGAIN, EINTR), or list/clear what is armed.",
        discussion: """
            gmemctl inject enomem FILE [--count N] [--range OFFSET SIZE]
            gmemctl inject eintr  FILE [--count N] [--range OFFSET SIZE]
            gmemctl inject eagain FILE OFFSET [--count N]
            gmemctl inject clear  FILE
            gmemctl inject list   FILE

            An armed failure fires for the next N (default 1) conversions of FILE that
            would change its map (a request that already holds its attributes succeeds
            as usual), through the ioctl or the xattr, and changes nothing:
              enomem  ENOMEM, error_offset = the request's start; with --range only
                      requests overlapping [OFFSET, OFFSET+SIZE)
              eintr   EINTR, error_offset = the request's start; --range as above
              eagain  EAGAIN (EBUSY through the xattr), error_offset = OFFSET, for
                      to-private requests that contain the page at OFFSET
            Failures fire in the order they were armed; at most \(GmemLimit.injectedFailuresMax) are armed at once.
            Each injected failure counts in injected_failures (gmemctl stats FILE).
            Writes user.gmem.inject = "enomem count N range OFFSET SIZE" and the like.
            """)

    enum Action: String, ExpressibleByArgument, CaseIterable { case enomem, eintr, eagain, clear, list }

    @Argument(help: "enomem, eintr, eagain, clear or list.") var action: Action
    @Argument(help: "The gmem file.", completion: .file()) var file: String
    @Argument(help: "eagain only: the byte offset of the page to report (multiple of 4096).") var offset: String?
    @Option(help: "How many conversions fail (≥ 1).") var count: String?
    @Option(parsing: .upToNextOption, help: "enomem/eintr only: OFFSET SIZE, the range a request must overlap.") var range: [String] = []

    func run() throws {
        let target = try GmemPath(file, .file)
        var value: String?
        let n = try count.map { c in
            let n = try Input.number(c, "count")
            guard n >= 1 else { throw UsageFailure("count must be at least 1") }
            return n
        }
        switch action {
        case .list, .clear:
            guard offset == nil, count == nil, range.isEmpty else { throw UsageFailure("\(action.rawValue) takes only FILE") }
            if action == .clear { value = GmemXattr.injectClear }
        case .eagain:
            guard let offset else { throw UsageFailure("eagain needs the OFFSET of the page to report") }
            let o = try Input.offset(offset)
            guard o < target.size else { throw UsageFailure("offset \(offset) is at or past the end of \(file) (\(Units.hex(target.size)))") }
            guard range.isEmpty else { throw UsageFailure("eagain names one page; --range is for enomem and eintr") }
            value = GmemXattr.injectValue(.eagain, offset: o, count: n)
        case .enomem, .eintr:
            guard offset == nil else { throw UsageFailure("\(action.rawValue) takes no OFFSET (use --range OFFSET SIZE)") }
            var window: (offset: UInt64, size: UInt64)?
            if !range.isEmpty {
                guard range.count == 2 else { throw UsageFailure("--range takes OFFSET SIZE") }
                let o = try Input.offset(range[0]), s = try Input.size(range[1])
                _ = try Input.range(offset: o, size: s, fileSize: target.size, file: file)
                window = (o, s)
            }
            value = GmemXattr.injectValue(action == .enomem ? .enomem : .eintr, count: n, range: window)
        }
        if let value {
            try Xattr.set(file, GmemXattr.inject, value, hints: [EINVAL: "the daemon refused the value", ENOSPC: "\(GmemLimit.injectedFailuresMax) failures are already armed on this file (gmemctl inject clear FILE)"])
        }
        let armed = try Xattr.get(file, GmemXattr.inject)
        print(armed.isEmpty ? "\(file): nothing armed" : "\(file): armed\n" + armed.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
    }
}
