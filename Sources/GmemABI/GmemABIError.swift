/// Why a piece of interface text or bytes was refused. Each case carries what a person needs
/// to see; the daemon turns every case into EINVAL (or ENODATA for a window), gmemctl into
/// its own usage message.
public enum GmemABIError: Error, Equatable, Sendable {
    /// Not in the number grammar (``GmemNumber``).
    case notANumber(String)
    /// In the number grammar, but larger than `UInt64.max`.
    case overflow(String)
    /// An ioctl argument of the wrong size (each struct has exactly one).
    case wrongSize(expected: Int, got: Int)
    /// Not a `START-END` window with `START < END` (hex).
    case malformedWindow(String)
    /// Not a `START-END private|shared` attribute line.
    case malformedLine(String)
    /// A creation-flag name that does not exist (``GmemCreateFlag``).
    case unknownFlag(String)
    /// A creation-flag number with bits no flag has.
    case unknownFlagBits(String)
}

extension GmemABIError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .notANumber(let t): "'\(t)' is not a number"
        case .overflow(let t): "'\(t)' overflows 64 bits"
        case .wrongSize(let expected, let n): "argument is \(n) bytes, expected \(expected)"
        case .malformedWindow: "window must be START-END in hex with START < END"
        case .malformedLine(let l): "'\(l)' is not a 'START-END private|shared' line"
        case .unknownFlag(let t): "unknown flag '\(t)' (known: \(GmemCreateFlag.allCases.map(\.rawValue).joined(separator: ", ")))"
        case .unknownFlagBits(let t):
            "flags \(t) has unknown bits (\(GmemCreateFlag.allCases.map { "bit \($0.bit.trailingZeroBitCount) \($0.rawValue)" }.joined(separator: ", ")))"
        }
    }
}
