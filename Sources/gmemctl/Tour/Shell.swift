import Foundation
import Glibc

/// Runs the tour's commands exactly as shown, through `bash -c`, with stdout and stderr merged
/// in order (what a terminal would show).
struct Shell {
    var environment: [String: String]

    struct Result {
        var status: Int32
        /// The signal that killed the command, if one did.
        var signal: Int32?
        var output: String
    }

    func process(_ command: String) -> (Process, Pipe) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = ["-c", command]
        p.environment = environment
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        return (p, out)
    }

    /// Runs `command` to completion (SIGKILL after `timeout` seconds).
    func run(_ command: String, timeout: Double = 30) throws -> Result {
        let (p, out) = process(command)
        p.standardInput = FileHandle.nullDevice
        try p.run()
        try? out.fileHandleForWriting.close()
        let deadline = Date().addingTimeInterval(timeout)
        let output = Self.readAll(out.fileHandleForReading.fileDescriptor, until: deadline)
        // EOF comes before the exit is reaped: wait for it, up to the deadline.
        while p.isRunning && Date() < deadline { usleep(2_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        return Self.result(p, output)
    }

    static func result(_ p: Process, _ output: String) -> Result {
        if p.terminationReason == .uncaughtSignal {
            return Result(status: 128 + p.terminationStatus, signal: p.terminationStatus, output: output)
        }
        // bash reports a child killed by a signal as 128+N.
        let s = p.terminationStatus
        return Result(status: s, signal: s > 128 && s < 160 ? s - 128 : nil, output: output)
    }

    /// Reads `fd` to EOF or the deadline.
    static func readAll(_ fd: Int32, until deadline: Date) -> String {
        var data = [UInt8]()
        while let chunk = readSome(fd, until: deadline), !chunk.isEmpty { data += chunk }
        return String(decoding: data, as: UTF8.self)
    }

    /// Reads one line (without its newline) from `fd`, or nil at EOF or the deadline.
    static func readLine(_ fd: Int32, until deadline: Date) -> String? {
        var data = [UInt8]()
        var byte: UInt8 = 0
        while true {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ms = Int32(max(0, deadline.timeIntervalSinceNow * 1000))
            guard poll(&pfd, 1, ms) > 0, read(fd, &byte, 1) == 1 else { return data.isEmpty ? nil : String(decoding: data, as: UTF8.self) }
            if byte == UInt8(ascii: "\n") { return String(decoding: data, as: UTF8.self) }
            data.append(byte)
        }
    }

    /// Some bytes; empty at EOF; nil at the deadline.
    private static func readSome(_ fd: Int32, until deadline: Date) -> [UInt8]? {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ms = Int32(max(0, deadline.timeIntervalSinceNow * 1000))
        guard poll(&pfd, 1, ms) > 0 else { return nil }
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = read(fd, &buf, buf.count)
        return n <= 0 ? [] : Array(buf[..<n])
    }
}
