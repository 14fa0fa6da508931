import CLinuxSys
import Glibc
import GmemABI

/// What the output stream can show: colour and width.
struct Terminal: Sendable {
    var color: Bool
    var width: Int

    /// Colour when stdout is a TTY and `NO_COLOR` is unset or empty (https://no-color.org);
    /// width from `COLUMNS`, else TIOCGWINSZ on stdout, else 80 (at most ``maxColumns``).
    static func stdout(color choice: ColorChoice = .auto) -> Terminal {
        let noColor = (getenv("NO_COLOR").map { String(cString: $0) } ?? "").isEmpty == false
        let color: Bool
        switch choice {
        case .always: color = true
        case .never: color = false
        case .auto: color = isatty(STDOUT_FILENO) == 1 && !noColor
        }
        return Terminal(color: color, width: columns())
    }

    /// The widest line drawn, whatever `COLUMNS` says (a bar is one cell per column).
    static let maxColumns = 1024

    static func columns() -> Int {
        if let c = getenv("COLUMNS"), let n = Int(String(cString: c)), n > 0 { return min(n, maxColumns) }
        var ws = winsize()
        if clinux_ioctl_ptr(STDOUT_FILENO, UInt(TIOCGWINSZ), &ws) == 0, ws.ws_col > 0 { return min(Int(ws.ws_col), maxColumns) }
        return 80
    }

    // SGR sequences; empty without colour.
    func sgr(_ code: String) -> String { color ? "\u{1B}[\(code)m" : "" }
    var reset: String { sgr("0") }
    func bold(_ s: String) -> String { color ? sgr("1") + s + reset : s }
    func dim(_ s: String) -> String { color ? sgr("2") + s + reset : s }
    func paint(_ s: String, _ code: String) -> String { color ? sgr(code) + s + reset : s }
}

enum ColorChoice: String, CaseIterable, Sendable {
    case auto, always, never
}

/// Sizes and offsets as people read them.
enum Units {
    /// `64 KiB`, `1.5 GiB`, `512 B`.
    static func human(_ bytes: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var i = 0
        var div: UInt64 = 1
        while i + 1 < units.count, bytes / div >= 1024 { div <<= 10; i += 1 }
        if i == 0 { return "\(bytes) B" }
        if bytes % div == 0 { return "\(bytes / div) \(units[i])" }
        let v = Double(bytes) / Double(div)
        let s = v >= 100 ? String(Int(v.rounded())) : String(format1: v)
        return "\(s) \(units[i])"
    }

    static func hex(_ v: UInt64) -> String { GmemNumber.hex(v) }
}

extension String {
    /// One decimal place.
    init(format1 v: Double) {
        let tenths = Int((v * 10).rounded())
        self = "\(tenths / 10).\(tenths % 10)"
    }
}

/// Flushes stdout (fflush(NULL) flushes every stream; `stdout` itself is not concurrency-safe to name).
func flushOutput() { fflush(nil) }

/// Writes a line to stderr, unbuffered.
func printError(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
}
