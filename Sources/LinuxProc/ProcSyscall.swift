/// `/proc/TID/syscall` (proc(5)): the system call a thread is blocked in.
///
/// Formats: `NR ARG1 ... ARG6 SP PC` (arguments, stack and program counter in `0x` hex) while
/// the thread is in a system call; `-1 SP PC` when it is blocked outside one (a page fault
/// from user mode); `running` while it runs.
public enum ProcSyscall: Sendable, Equatable {
    /// Blocked in system call `number` with its six arguments.
    case blocked(number: Int, arguments: [UInt64])
    /// Blocked, but not in a system call (`-1`).
    case notInSyscall
    /// Running on a CPU: nothing is stable to read.
    case running

    /// Parses the file's text; nil when it is not in one of the formats above.
    public init?(text: Substring) {
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard let first = fields.first else { return nil }
        if first == "running" {
            guard fields.count == 1 else { return nil }
            self = .running
            return
        }
        guard let number = Int(first) else { return nil }
        if number == -1 {
            guard fields.count == 3, fields.dropFirst().allSatisfy({ Self.hex($0) != nil }) else { return nil }
            self = .notInSyscall
            return
        }
        guard number >= 0, fields.count == 9 else { return nil }
        var values: [UInt64] = []
        for field in fields.dropFirst() {
            guard let v = Self.hex(field) else { return nil }
            values.append(v)
        }
        self = .blocked(number: number, arguments: Array(values.prefix(6)))
    }

    /// `0x`-prefixed lowercase or uppercase hex; nil otherwise.
    static func hex(_ field: Substring) -> UInt64? {
        guard field.hasPrefix("0x"), field.count > 2 else { return nil }
        return UInt64(field.dropFirst(2), radix: 16)
    }
}
