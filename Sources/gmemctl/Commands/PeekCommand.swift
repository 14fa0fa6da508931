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
            With --hold the mapping is kept: after the first read peek waits for a line
            on stdin, then reads the same mapping again (after a conversion to private:
            SIGBUS).
            """)

    /// The most bytes one peek shows.
    static let maxCount = 1 << 20

    @Argument(help: "A gmem file created with the mmap flag.", completion: .file()) var file: String
    @Argument(help: "Byte offset (decimal, 0x hex, K/M/G/T suffix).") var offset: String
    @Option(help: "Bytes to read (1 to 1 MiB, not past the end of the file).") var count = 16
    @Flag(help: "Keep the mapping and read again after a line on stdin.") var hold = false

    func validate() throws {
        guard count > 0, count <= Self.maxCount else { throw ValidationError("--count must be 1 to \(Self.maxCount) (1 MiB)") }
    }

    func run() throws {
        let off = try Input.number(offset, "offset")
        let target = try GmemPath(file, .file)
        guard off < target.size else {
            throw UsageFailure("offset \(offset) is at or past the end of \(file) (\(Units.human(target.size)))")
        }
        guard UInt64(count) <= target.size - off else {
            throw UsageFailure("--count \(count) reaches past the end of \(file): at most \(target.size - off) bytes from offset \(offset)")
        }
        let fd = open(file, O_RDONLY)
        guard fd >= 0 else { throw SystemError("open \(file)") }
        defer { close(fd) }
        let base = off & ~4095
        // off - base < 4096 and count <= 1 MiB: no overflow.
        let length = Int(off - base) + count
        guard let mem = mmap(nil, length, PROT_READ, MAP_SHARED, fd, off_t(base)), mem != MAP_FAILED else {
            throw SystemError("mmap \(file) at \(Units.hex(base))", hints: [ENODEV: "the file was created without the mmap flag"])
        }
        defer { munmap(mem, length) }
        // A fault on a private page must end this process with a plain SIGBUS, as it would any
        // program (not with the Swift runtime's crash report).
        signal(SIGBUS, SIG_DFL)
        let bytes = UnsafeRawBufferPointer(start: mem + Int(off - base), count: count)
        func show() {
            // Touching `bytes` is the page fault; a private page ends the process here. Shown in
            // chunks, so a large count needs no copy of its size.
            var i = 0
            while i < bytes.count {
                let chunk = bytes[i..<min(i + 65536, bytes.count)]
                print(String(decoding: chunk.map { $0 >= 0x20 && $0 < 0x7f ? $0 : UInt8(ascii: ".") }, as: UTF8.self), terminator: "")
                i += chunk.count
            }
            print()
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
