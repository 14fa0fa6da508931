// Error injection for conversions: failures the kernel can return but no real machine produces
// on demand, armed per file with `user.gmem.inject` (docs/xattr-interface.md) so that VMM code
// can exercise its error paths.

import GmemABI

/// What an injected failure looks like to the caller (its names are the interface's).
public typealias InjectedFailure = GmemInjectedFailure

/// One armed failure: `enomem|eintr [count N] [range OFFSET SIZE]` or `eagain OFFSET [count N]`.
///
/// It fires for the next `count` conversions that would change the map (a request that already
/// holds its attributes succeeds without consuming it, as the kernel returns early before any
/// failure point) and that match:
/// - `enomem`, `eintr`: any direction; with `range`, only requests overlapping it.
/// - `eagain OFFSET`: only to-private requests containing the page at OFFSET (the kernel refuses
///   only those for references); `error_offset` is OFFSET.
public struct InjectedFault: Equatable, Sendable {
    public let failure: InjectedFailure
    /// The page an `eagain` names (byte offset).
    public let offset: UInt64?
    /// Pages a request must overlap (`range`), nil for any.
    public let pages: PageRange?
    /// Failures still to inject (≥ 1 while armed).
    public internal(set) var remaining: UInt64

    /// Parses one fault for a file of `fileSize` bytes. Validate-first: every field is checked
    /// before anything is armed; any error is EINVAL.
    ///
    /// Grammar (fields separated by blanks, numbers as in every xattr):
    /// ```
    /// fault  = ("enomem" | "eintr") [count] [range]   (options in any order, each once)
    ///        | "eagain" OFFSET [count]
    /// count  = "count" N                              N ≥ 1, default 1
    /// range  = "range" OFFSET SIZE                    page-aligned, non-empty, inside the file
    /// ```
    public init<S: StringProtocol>(fields f: [S], fileSize: UInt64) throws(GmemError) {
        guard let head = f.first, let failure = InjectedFailure(rawValue: head.lowercased()) else {
            throw .invalidArgument("expected enomem, eagain OFFSET, eintr or clear")
        }
        var i = 1
        var offset: UInt64?
        if failure == .eagain {
            guard i < f.count else { throw .invalidArgument("eagain needs the OFFSET of the page to report") }
            let o = try parseNumber(f[i])
            guard o % pageSize == 0, o < fileSize else { throw .invalidArgument("eagain OFFSET must be a multiple of 4096 inside the file") }
            offset = o
            i += 1
        }
        var count: UInt64?
        var pages: PageRange?
        while i < f.count {
            switch f[i].lowercased() {
            case "count" where count == nil:
                guard i + 1 < f.count else { throw .invalidArgument("count needs N") }
                let n = try parseNumber(f[i + 1])
                guard n >= 1 else { throw .invalidArgument("count must be at least 1") }
                count = n
                i += 2
            case "range" where pages == nil && failure != .eagain:
                guard i + 2 < f.count else { throw .invalidArgument("range needs OFFSET SIZE") }
                // The same range rules as a conversion's.
                pages = try ConversionRequest(offset: try parseNumber(f[i + 1]), size: try parseNumber(f[i + 2]),
                                              attributes: 0, fileSize: fileSize).pages
                i += 3
            default:
                throw .invalidArgument("unexpected '\(f[i])' (options: count N, and range OFFSET SIZE except for eagain; each once)")
            }
        }
        self.failure = failure; self.offset = offset; self.pages = pages; self.remaining = count ?? 1
    }

    /// Whether a valid conversion of `pages` (to private if `toPrivate`) triggers this fault.
    func matches(_ request: PageRange, toPrivate: Bool) -> Bool {
        switch failure {
        case .eagain: return toPrivate && request.contains(offset! >> pageShift)
        case .enomem, .eintr: return pages.map { $0.overlaps(request) } ?? true
        }
    }

    /// The fault in its own grammar, with the count still to inject.
    public var description: String {
        var s = failure.rawValue
        if let offset { s += " 0x" + String(offset, radix: 16) }
        s += " count \(remaining)"
        if let pages {
            s += " range 0x" + String(pages.offset, radix: 16)
            s += " 0x" + String(pages.size, radix: 16)
        }
        return s
    }
}

/// A `user.gmem.inject` value: arm one fault, or `clear` every armed one.
public enum InjectionCommand: Equatable, Sendable {
    case arm(InjectedFault)
    case clear

    public init(xattrValue value: [UInt8], fileSize: UInt64) throws(GmemError) {
        let f = try fields(value)
        if f.count == 1, f[0].lowercased() == GmemXattr.injectClear { self = .clear; return }
        self = .arm(try InjectedFault(fields: f, fileSize: fileSize))
    }
}

/// The faults armed on one file, in arming order. Not thread-safe: ``GuestMemFile`` keeps it
/// behind a leaf mutex.
public struct FaultInjector: Sendable {
    /// Faults armed at once on one file; arming one more is ENOSPC.
    public static let maximumArmed = GmemLimit.injectedFailuresMax
    public private(set) var armed: [InjectedFault] = []

    public init() {}

    public mutating func apply(_ command: InjectionCommand) throws(GmemError) {
        switch command {
        case .clear: armed.removeAll()
        case .arm(let fault):
            guard armed.count < Self.maximumArmed else { throw .noSpace("\(Self.maximumArmed) faults are already armed on this file") }
            armed.append(fault)
        }
    }

    /// Consumes one failure of the first armed fault matching a conversion of `request`; returns
    /// the error the conversion fails with, or nil.
    public mutating func fire(_ request: ConversionRequest) -> GmemError? {
        guard let i = armed.firstIndex(where: { $0.matches(request.pages, toPrivate: request.attributes.isPrivate) }) else { return nil }
        let fault = armed[i]
        if fault.remaining == 1 { armed.remove(at: i) } else { armed[i].remaining -= 1 }
        return .injected(fault.failure, errorOffset: fault.offset ?? request.offset)
    }
}
