import ArgumentParser
import Glibc

/// `gmemctl peek FILE OFFSET [--count N] [--hold]`: reads bytes through a MAP_SHARED mapping,
/// the way a VMM or any program touching guest memory would. A fault on a private page kills
/// the process with SIGBUS, on purpose: that is what the kernel does.
struct PeekCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peek",
        abstract: "Read bytes through mmap(MAP_SHARED); a private page raises SIGBUS.",
        discussion: """
            With --hold the mapping is kept: after the first read peek waits for a line on stdin,
            then reads the same mapping again (after a conversion to private: SIGBUS).
            """)

    @Argument(help: "A gmem file created with the mmap flag.") var file: String
    @Argument(help: "Byte offset.") var offset: String
    @Option(help: "Bytes to read.") var count = 16
    @Flag(help: "Keep the mapping and read again after a line on stdin.") var hold = false

    func run() throws {
        guard let off = Units.parse(offset) else { throw UsageFailure("offset '\(offset)' is not a number") }
        guard count > 0 else { throw UsageFailure("--count must be positive") }
        let fd = open(file, O_RDONLY)
        guard fd >= 0 else { throw SystemError("open \(file)") }
        defer { close(fd) }
        let base = off & ~4095
        let length = Int(off - base) + count
        guard let mem = mmap(nil, length, PROT_READ, MAP_SHARED, fd, off_t(base)), mem != MAP_FAILED else {
            throw SystemError("mmap \(file) at \(Units.hex(base))")
        }
        defer { munmap(mem, length) }
        // A fault on a private page must end this process with a plain SIGBUS, as it would any
        // program (not with the Swift runtime's crash report).
        signal(SIGBUS, SIG_DFL)
        let bytes = UnsafeRawBufferPointer(start: mem + Int(off - base), count: count)
        func show() {
            // Touching `bytes` is the page fault; a private page ends the process here.
            print(String(decoding: bytes.map { $0 >= 0x20 && $0 < 0x7f ? $0 : UInt8(ascii: ".") }, as: UTF8.self))
            flushOutput()
        }
        show()
        if hold {
            printError("peek: holding the mapping; press Enter to read it again")
            _ = readLine()
            show()
        }
    }
}
