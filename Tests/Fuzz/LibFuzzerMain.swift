// libFuzzer entry point for GmemCore's parsers (built by Scripts/libfuzzer.sh, not by SwiftPM).
// The first byte picks the target, the rest is the input. Accepted inputs are checked against
// the documented invariants; a violated invariant traps, which libFuzzer reports as a crash.

import GmemABI

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    guard count > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: count - 1))
    let budget = MemoryBudget(limitBytes: nil)
    switch data[0] % 5 {
    case 0:
        _ = try? parseNumber(String(decoding: bytes, as: UTF8.self))
    case 1:
        // File sizes: a small one (a real file), or any page multiple from the input's end.
        let file = try! GuestMemFile(size: 64 * 4096, flags: [.mmap], budget: budget)
        if let r = try? ConversionRequest(xattrValue: bytes, fileSize: file.size) {
            precondition(r.offset % pageSize == 0 && r.size % pageSize == 0 && r.size > 0 && r.offset + r.size <= file.size)
            try! file.setAttributes(r)
            precondition(file.attributes(at: r.offset) == r.attributes)
        }
        _ = try? ConversionRequest(xattrValue: bytes, fileSize: .max & ~(pageSize - 1))
    case 2:
        var raw = bytes + Array(repeating: 0, count: max(0, 128 - bytes.count))
        if bytes.count % 2 == 1 { raw = bytes }   // odd lengths keep their (wrong) size
        let args = raw.withUnsafeBytes { try? KVMMemoryAttributes2(bytes: $0) }
        if let r = try? args?.request(fileSize: 1 << 30) {
            precondition(r.offset.addingReportingOverflow(r.size).overflow == false && r.offset + r.size <= 1 << 30)
        }
    case 3:
        if let r = try? CreateRequest(xattrValue: bytes) {
            precondition(!r.name.isEmpty && !r.name.hasPrefix(".") && !r.name.contains("/") && r.size % pageSize == 0)
        }
    default:
        _ = try? CreateRequest.parseFlags(String(decoding: bytes, as: UTF8.self))
    }
    return 0
}
