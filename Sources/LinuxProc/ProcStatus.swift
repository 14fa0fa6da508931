/// `/proc/PID/status` (proc(5)): `Key:\tvalue` lines.
public struct ProcStatus: Sendable, Equatable {
    /// Every `Key: value` line, the value without its leading blanks.
    public let fields: [String: String]

    /// Parses the file's text; nil when a non-empty line has no `:` or a key repeats.
    public init?(text: Substring) {
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":"), colon != line.startIndex else { return nil }
            let key = String(line[..<colon])
            guard fields[key] == nil else { return nil }
            fields[key] = String(line[line.index(after: colon)...].drop(while: { $0 == " " || $0 == "\t" }))
        }
        self.fields = fields
    }

    /// The command name (`Name`).
    public var name: String? { fields["Name"] }
    /// The thread group (process) id (`Tgid`).
    public var threadGroupID: Int32? { fields["Tgid"].flatMap { Int32($0) } }
    /// The thread's own id (`Pid`).
    public var threadID: Int32? { fields["Pid"].flatMap { Int32($0) } }
    public var parentID: Int32? { fields["PPid"].flatMap { Int32($0) } }

    /// A signal mask (`SigPnd`, `ShdPnd`, `SigBlk`, `SigIgn`, `SigCgt`): bit N-1 is signal N.
    public func signalMask(_ key: String) -> UInt64? {
        fields[key].flatMap { UInt64($0, radix: 16) }
    }
}
