import GmemABI
import Glibc

/// The memory behind one file: a private anonymous mapping of the file's whole size, reserved
/// with `MAP_NORESERVE`, so that memory is only used for pages that are written.
///
/// Pages never written read as zeros (the kernel's zero page); `discard` returns pages to the
/// kernel (`MADV_DONTNEED`), after which they read as zeros again. Transparent huge pages are
/// off for the mapping, so a 4 KiB write costs 4 KiB. Holds no lock: callers serialise.
final class PageStore: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let byteCount: Int

    /// The largest file this store can reserve (64 TiB): a 47-bit address space holds a few.
    static let maximumSize: UInt64 = GmemLimit.fileSizeMax

    init(size: UInt64) throws(GmemError) {
        guard size <= Self.maximumSize else { throw .fileTooLarge(size) }
        let p = mmap(nil, Int(size), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let p, p != MAP_FAILED else { throw .noSpace("cannot reserve \(size) bytes of address space") }
        madvise(p, Int(size), MADV_NOHUGEPAGE)
        base = p
        byteCount = Int(size)
    }

    deinit { munmap(base, byteCount) }

    /// The bytes `[offset, offset + count)`. Requires the range to be inside the store.
    func bytes(at offset: UInt64, count: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base + Int(offset), count: count)
    }

    /// Frees the memory of `pages`; they read as zeros afterwards.
    func discard(pages: PageRange) {
        let start = Int(pages.offset)
        let length = Int(pages.size)
        madvise(base + start, length, MADV_DONTNEED)
    }
}
