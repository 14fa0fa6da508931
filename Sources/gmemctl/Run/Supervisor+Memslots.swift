import CLinuxSys
import CSeccomp
import Glibc
import GmemABI
import GmemRun
import LinuxProc

// Memslots under `gmemctl run` (docs/run.md, "Memslots"): binding a KVM_MEM_GUEST_MEMFD slot
// to the guest view of a run-made guest_memfd, in the VMM's own address space.
extension Supervisor {
    /// The guest view of a guest_memfd this run created: an O_PATH descriptor of
    /// `.guest/NAME`, its inode, and the file's size.
    struct GuestView {
        let descriptor: Int32
        let inode: UInt64
        let size: UInt64
    }

    /// Closes the kept guest views of files gmemfs has freed (their reopening is ENOENT), once
    /// their number doubles since the last sweep: a program may create any number of
    /// guest_memfds, and each kept view is a descriptor of gmemctl's.
    func sweepGuestViews() {
        guard guestViews.count >= sweepAt else { return }
        for (inode, view) in guestViews {
            let probe = open("/proc/self/fd/\(view.descriptor)", O_RDONLY | O_CLOEXEC)
            if probe >= 0 {
                close(probe)
            } else if errno == ENOENT {
                close(view.descriptor)
                guestViews[inode] = nil
            }
        }
        sweepAt = max(256, guestViews.count * 2)
    }

    /// `KVM_SET_USER_MEMORY_REGION2` naming our guest_memfd `file` (docs/run.md, "Memslots"):
    /// validated as the kernel does, then the slot is set by the caller's own thread, with
    /// the guest view mapped into its process (once per process and file) as the memory.
    func bindMemslot(_ region: MemoryRegion2, file: UInt64, mmap: Bool, tid: pid_t, id: UInt64) {
        let view = guestViews[file]
        let binding: MemslotBinding
        switch MemslotBinding.plan(region, fileSize: view?.size ?? .max) {   // without a view: refused below
        case .failure(let e): return execute(.fail(e.code, note: nil), tid: tid, id: id)
        case .success(let b): binding = b
        }
        #if !arch(x86_64)
        return execute(.fail(RunPolicy.memslotRefusal, note: RunPolicy.MemslotNote.architecture), tid: tid, id: id)
        #else
        let bytes: [UInt8]
        var mapFD: Int32 = -1
        var mapped: UInt64 = 0
        switch binding {
        case .delete(let r):
            bytes = r
        case .bind(let r):
            bytes = r
            guard let view else {
                return execute(.fail(RunPolicy.memslotRefusal, note: mmap ? RunPolicy.MemslotNote.withoutGuestView : RunPolicy.MemslotNote.withoutMmap), tid: tid, id: id)
            }
            if let address = existingMapping(of: view, in: tid) {
                mapped = address
            } else {
                mapFD = open("/proc/self/fd/\(view.descriptor)", O_RDWR | O_CLOEXEC)
                guard mapFD >= 0 else { return execute(.fail(errno, note: nil), tid: tid, id: id) }
            }
        }
        defer { if mapFD >= 0 { close(mapFD) } }
        var result: Int64 = 0
        var others = [cseccomp_notification](repeating: cseccomp_notification(), count: 64)
        var otherCount: Int32 = 0
        let isBind: Int32 = if case .bind = binding { 1 } else { 0 }
        let rc = bytes.withUnsafeBytes { raw in
            cseccomp_bind_memslot(listener, id, tid, mapFD, view?.size ?? 0, &mapped, raw.baseAddress, isBind,
                                  &result, &others, Int32(others.count), &otherCount)
        }
        if rc < 0 && rc != -ESRCH && rc != -EAGAIN {
            execute(.fail(RunPolicy.memslotRefusal, note: RunPolicy.MemslotNote.ptrace(SystemError.describe(-rc))), tid: tid, id: id)
        }
        for n in others.prefix(Int(otherCount)) { handle(n) }
        #endif
    }

    /// The address of a mapping this run made of `view` in `tid`'s process (the whole file,
    /// read-write, shared), if it is still there.
    func existingMapping(of view: GuestView, in tid: pid_t) -> UInt64? {
        guard let maps = ProcFiles.read("/proc/\(tid)/maps", limit: 1 << 22) else { return nil }
        let prefix = (mountRoot.hasSuffix("/") ? mountRoot : mountRoot + "/") + ".guest/"
        for line in maps.split(separator: "\n") {
            let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard fields.count == 6, fields[1] == "rw-s", UInt64(fields[2], radix: 16) == 0, UInt64(fields[4]) == view.inode,
                  fields[5].drop(while: { $0 == " " }).hasPrefix(prefix) else { continue }
            let range = fields[0].split(separator: "-")
            guard range.count == 2, let start = UInt64(range[0], radix: 16), let end = UInt64(range[1], radix: 16),
                  end >= start, end - start >= view.size else { continue }
            return start
        }
        return nil
    }
}
