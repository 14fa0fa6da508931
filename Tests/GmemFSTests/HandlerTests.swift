import CLinuxSys
import FuseKit
import Glibc
import GmemABI
import GmemCore
@testable import GmemFS
import Logging
import SystemPackage
import Testing

/// The bridge's decode/dispatch logic, mount-free: handlers are called directly and answer
/// into a ``ReplyRecorder`` (the way fuser tests its replies). What reaches the kernel is
/// covered by the mount tests; these pin which errno each refusal gets and that a refused
/// request changes nothing.
@Suite struct HandlerTests {
    let ctx = RequestContext(uid: 0, gid: 0, pid: 0)

    /// A file system with one 8-page file `f` (host inode 16, guest inode 17).
    func filesystem(_ fidelity: Fidelity = .tools, flags: GmemFlags = [.mmap, .initShared],
                    inPlace: InPlaceConversion = .enabled) throws -> (GmemFilesystem, GuestMemFile) {
        var options = GmemOptions(guestView: true, fidelity: fidelity)
        options.inPlaceConversion = inPlace
        let fs = GmemFilesystem(options: options, notifier: Notifier(), logger: Logger(label: "test"))
        return (fs, try fs.createFile(CreateRequest(name: "f", size: 8 * pageSize, flags: flags)))
    }

    let host = InodeNumber.firstFile, guest = InodeNumber.firstFile.guestView

    func handle(_ flags: Int32) -> FileInfo { FileInfo(handle: GmemFileHandle(access: AccessMode(openFlags: flags), serial: 1).fileHandle, flags: flags) }

    /// The access mode survives the round trip through the FUSE handle; the serial makes each
    /// open's handle its own.
    @Test func handlePacking() {
        for mode in [AccessMode.readOnly, .writeOnly, .readWrite, .noReadWrite] {
            #expect(GmemFileHandle(GmemFileHandle(access: mode, serial: 0).fileHandle).access == mode)
            #expect(GmemFileHandle(GmemFileHandle(access: mode, serial: 12345).fileHandle).access == mode)
            #expect(GmemFileHandle(access: mode, serial: 5) != GmemFileHandle(access: mode, serial: 6))
        }
    }

    func answer<Kind>(_ call: (consuming Reply<Kind>) -> Void) -> RecordedReply? {
        let r = ReplyRecorder()
        call(Reply(recordingInto: r))
        return r.only
    }

    /// The inode encoding: fixed nodes, a file's host/guest pair, its `.maps/NAME` number.
    @Test func inodeNumbers() {
        #expect(InodeNumber(1).target == .root && InodeNumber(2).target == .guestDirectory)
        #expect(InodeNumber(3).target == .mapsDirectory && InodeNumber(4).target == .trace)
        let f = InodeNumber.firstFile, g = f.nextFile
        #expect(f.target == .host(f) && f.guestView.target == .guest(host: f) && f.mapFile.target == .map(host: f))
        #expect(g.rawValue == f.rawValue + 2 && g.guestView.target == .guest(host: g) && g.mapFile.target == .map(host: g))
        #expect(f.mapFile.rawValue == f.rawValue | 1 << 62)
    }

    /// FuseKit's PendingReply: answered from a closure once; a second answer is dropped (not
    /// sent twice); a box dropped unanswered answers EIO.
    @Test func pendingReplyAnswersOnce() {
        let r = ReplyRecorder()
        var pending = PendingReply(Reply<EmptyReply>(recordingInto: r))
        [1, 2].forEach { _ in pending.answer { $0.complete(nil) } }
        if let left = pending.take() { Issue.record("the reply is still there"); left.complete(nil) }
        guard case .success? = r.only else { Issue.record("\(r.all)"); return }
        let dropped = ReplyRecorder()
        do { _ = PendingReply(Reply<EmptyReply>(recordingInto: dropped)) }
        guard case .dropped? = dropped.only else { Issue.record("\(dropped.all)"); return }
    }

    @Test func fallocateBadModesTouchNoMemory() throws {
        let (fs, f) = try filesystem()
        let p = Int(pageSize)
        for mode: Int32 in [0, Int32(FALLOC_FL_PUNCH_HOLE), Int32(FALLOC_FL_KEEP_SIZE) | 0x08, 0x10] {
            let got = answer { fs.fallocate(ctx, inode: host, mode: mode, offset: 0, length: 8 * p, file: handle(O_RDWR), reply: $0) }
            #expect(got?.errno == .notSupported, "mode \(mode)")
        }
        for (offset, length) in [(1, p), (0, p + 1), (0, 0), (-p, p)] {
            let got = answer { fs.fallocate(ctx, inode: host, mode: Int32(FALLOC_FL_KEEP_SIZE), offset: offset, length: length, file: handle(O_RDWR), reply: $0) }
            #expect(got?.errno == .invalidArgument, "\(offset) +\(length)")
        }
        #expect(f.allocatedBytes == 0)
        let ok = answer { fs.fallocate(ctx, inode: host, mode: Int32(FALLOC_FL_KEEP_SIZE), offset: p, length: 2 * p, file: handle(O_RDWR), reply: $0) }
        guard case .success? = ok else { Issue.record("allocate: \(String(describing: ok))"); return }
        #expect(f.allocatedBytes == 2 * pageSize)
        let dir = answer { fs.fallocate(ctx, inode: .root, mode: Int32(FALLOC_FL_KEEP_SIZE), offset: 0, length: p, file: handle(O_RDWR), reply: $0) }
        #expect(dir?.errno == .isDirectory)
    }

    @Test func setattrSizeIsRefused() throws {
        let (fs, _) = try filesystem()
        var truncate = SetAttributes()
        truncate.size = 0
        #expect(answer { fs.setattr(ctx, inode: host, truncate, file: nil, reply: $0) }?.errno == .invalidArgument)
        #expect(answer { fs.setattr(ctx, inode: guest, truncate, file: nil, reply: $0) }?.errno == .invalidArgument)
        #expect(answer { fs.setattr(ctx, inode: .root, truncate, file: nil, reply: $0) }?.errno == .isDirectory)
        #expect(answer { fs.setattr(ctx, inode: InodeNumber(999), truncate, file: nil, reply: $0) }?.errno == .noSuchFileOrDirectory)
        // chmod: kept by default (the answer is the new attributes), EINVAL in kernel mode,
        // EPERM on the guest view.
        var chmod = SetAttributes()
        chmod.mode = 0o640
        guard case .attr(let st, _)? = answer({ fs.setattr(ctx, inode: host, chmod, file: nil, reply: $0) }) else {
            Issue.record("chmod did not answer attributes"); return
        }
        #expect(st.st_mode == S_IFREG | 0o640)
        #expect(answer { fs.setattr(ctx, inode: guest, chmod, file: nil, reply: $0) }?.errno == .notPermitted)
        let (kernel, _) = try filesystem(.kernel)
        #expect(answer { kernel.setattr(ctx, inode: host, chmod, file: nil, reply: $0) }?.errno == .invalidArgument)
    }

    @Test func openDecodesFlagsIntoTheHandle() throws {
        let (fs, _) = try filesystem()
        #expect(answer { fs.open(ctx, inode: host, flags: O_RDWR | O_TRUNC, reply: $0) }?.errno == .invalidArgument)
        #expect(answer { fs.open(ctx, inode: .root, flags: O_RDONLY, reply: $0) }?.errno == .isDirectory)
        guard case .open(let o)? = answer({ fs.open(ctx, inode: host, flags: O_WRONLY, reply: $0) }) else {
            Issue.record("open did not answer an open file"); return
        }
        #expect(GmemFileHandle(o.handle).access == .writeOnly)
        #expect(o.keepCache && !o.directIO && !o.nonseekable)
        guard case .open(let g)? = answer({ fs.open(ctx, inode: guest, flags: O_RDONLY, reply: $0) }) else {
            Issue.record("open did not answer an open file"); return
        }
        // The guest view of an mmap file is cached too (it is mapped as a memslot's memory);
        // without the mmap flag both views are direct_io.
        #expect(g.keepCache && !g.directIO)
        // Each open is its own handle (page references belong to it).
        #expect(g.handle != o.handle)
        let (plain, _) = try filesystem(flags: [.initShared])
        guard case .open(let pg)? = answer({ plain.open(ctx, inode: guest, flags: O_RDONLY, reply: $0) }),
              case .open(let ph)? = answer({ plain.open(ctx, inode: host, flags: O_RDONLY, reply: $0) }) else {
            Issue.record("open did not answer an open file"); return
        }
        #expect(pg.directIO && !pg.keepCache && ph.directIO && !ph.keepCache)
        let (kernel, _) = try filesystem(.kernel)
        guard case .open(let k)? = answer({ kernel.open(ctx, inode: host, flags: O_RDWR, reply: $0) }) else {
            Issue.record("open did not answer an open file"); return
        }
        #expect(k.nonseekable)
    }

    @Test func ioctlNeedsAWritableHandleAndItsCommand() throws {
        let (fs, f) = try filesystem()
        var args = [UInt8](repeating: 0, count: 128)
        args[9] = 0x10   // size = 0x1000 (offset 0), attributes 8 = private
        args[16] = 8
        let convert = KVMMemoryAttributes2.ioctlNumber
        func call(_ command: UInt32, _ inode: InodeNumber, _ flags: Int32) -> RecordedReply? {
            args.withUnsafeBytes { input in
                answer { fs.ioctl(ctx, inode: inode, command: command, input: input, outputSize: 128, file: handle(flags), reply: $0) }
            }
        }
        #expect(call(convert, host, O_RDONLY)?.errno == .badFileDescriptor)
        #expect(call(convert &+ 1, host, O_RDWR)?.errno == .inappropriateIOCTLForDevice)
        #expect(call(convert, InodeNumber.root, O_RDWR)?.errno == .inappropriateIOCTLForDevice)
        #expect(f.attributes(at: 0) == .shared)
        guard case .ioctl(0, let output)? = call(convert, host, O_WRONLY) else { Issue.record("conversion refused"); return }
        #expect(output.isEmpty)
        #expect(f.attributes(at: 0) == .private)
    }

    /// `--no-in-place`: the conversion ioctl is ENOTTY before anything else (a read-only handle
    /// or a malformed struct included) and copies nothing back; the xattr is EOPNOTSUPP on both
    /// views; nothing changes. Pins, injection and the map are unchanged.
    @Test func noInPlaceRefusesEveryConversion() throws {
        let (fs, f) = try filesystem(inPlace: .disabled)
        let good = KVMMemoryAttributes2(offset: 0, size: pageSize, attributes: GmemAttributeName.privateBit).encode()
        let bad = KVMMemoryAttributes2(offset: 1, size: pageSize, attributes: 0, flags: 1).encode()
        for (bytes, flags) in [(good, O_RDWR), (good, O_RDONLY), (bad, O_RDWR), ([UInt8](repeating: 0, count: 8), O_RDWR)] {
            let got = bytes.withUnsafeBytes { input in
                answer { fs.ioctl(ctx, inode: host, command: KVMMemoryAttributes2.ioctlNumber, input: input, outputSize: 128, file: handle(flags), reply: $0) }
            }
            guard case .error(.inappropriateIOCTLForDevice)? = got else { Issue.record("ioctl: \(String(describing: got))"); continue }
        }
        for inode in [host, guest] {
            let got = Array("0 4096 private".utf8).withUnsafeBytes { value in
                answer { fs.setxattr(ctx, inode: inode, name: GmemXattr.setAttributes, value: value, flags: 0, reply: $0) }
            }
            #expect(got?.errno == .notSupported)
        }
        #expect(f.attributes(at: 0) == .shared && f.stats.conversions == 0)
        let pin = GmemPageReference(offset: 0, size: pageSize).encode()
        let pinned = pin.withUnsafeBytes { input in
            answer { fs.ioctl(ctx, inode: host, command: GmemPageReference.pinNumber, input: input, outputSize: 64, file: handle(O_RDWR), reply: $0) }
        }
        guard case .ioctl(0, _)? = pinned else { Issue.record("pin refused: \(String(describing: pinned))"); return }
        let armed = Array("enomem".utf8).withUnsafeBytes { value in
            answer { fs.setxattr(ctx, inode: host, name: GmemXattr.inject, value: value, flags: 0, reply: $0) }
        }
        guard case .success? = armed else { Issue.record("inject refused: \(String(describing: armed))"); return }
    }

    /// The kernel answers EAGAIN only to a to-private conversion; an armed `eagain` never fails
    /// a to-shared one, in `--kernel-compat` mode as in the default (the ioctl succeeds, the fault
    /// stays armed for the next to-private request, which gets it with the struct copied back).
    @Test(arguments: [Fidelity.tools, .kernel])
    func injectedEagainNeverFailsAToSharedConversion(fidelity: Fidelity) throws {
        let (fs, f) = try filesystem(fidelity, flags: [.mmap])
        let armed = Array("eagain 0x1000 count 2".utf8).withUnsafeBytes { value in
            answer { fs.setxattr(ctx, inode: host, name: GmemXattr.inject, value: value, flags: 0, reply: $0) }
        }
        guard case .success? = armed else { Issue.record("inject refused: \(String(describing: armed))"); return }
        func convert(_ attributes: UInt64) -> RecordedReply? {
            KVMMemoryAttributes2(offset: 0, size: 4 * pageSize, attributes: attributes).encode().withUnsafeBytes { input in
                answer { fs.ioctl(ctx, inode: host, command: KVMMemoryAttributes2.ioctlNumber, input: input, outputSize: 128, file: handle(O_RDWR), reply: $0) }
            }
        }
        guard case .ioctl(0, _)? = convert(0) else { Issue.record("to-shared refused"); return }
        #expect(f.attributes(at: pageSize) == .shared && f.armedFaults.first?.remaining == 2)
        guard case .ioctlFailure(.resourceTemporarilyUnavailable, let back)? = convert(GmemAttributeName.privateBit) else {
            Issue.record("to-private not refused"); return
        }
        #expect(back == KVMMemoryAttributes2(offset: 0, size: 4 * pageSize, attributes: GmemAttributeName.privateBit, errorOffset: pageSize).encode())
    }

    /// A ghost (a private page a populate loop was answered with zeros) never takes a store:
    /// a writeback over it stores the pages around it and reports the whole write; a
    /// conversion to shared forgets it (after dropping the cached zeros).
    @Test func writebackSkipsGhostPagesAndConversionToSharedForgetsThem() throws {
        let (fs, f) = try filesystem(flags: [.mmap])
        try f.setAttributes(try ConversionRequest(offset: 0, size: 8 * pageSize, attributes: 0, fileSize: f.size))
        let node = try #require(fs.namespace.withLock { $0["f"] })
        try f.setAttributes(try ConversionRequest(offset: pageSize, size: pageSize, attributes: 8, fileSize: f.size))
        node.ghosts.withLock { $0[1] = 1 }
        let data = [UInt8](repeating: 0x5a, count: 3 * Int(pageSize))
        let writeback = FileInfo(handle: GmemFileHandle(access: .readWrite, serial: 1).fileHandle, flags: O_RDWR, isWritepage: true)
        let w = data.withUnsafeBytes { b in answer { fs.write(ctx, inode: host, offset: 0, data: b, file: writeback, reply: $0) } }
        guard case .written(let n)? = w else { Issue.record("writeback: \(String(describing: w))"); return }
        #expect(n == data.count)
        func guestBytes(_ page: UInt64) throws -> [UInt8] {
            try f.read(offset: page * pageSize, count: 2, view: .guest, allowShort: true) { Array($0) }
        }
        #expect(try guestBytes(0) == [0x5a, 0x5a] && guestBytes(1) == [0, 0] && guestBytes(2) == [0x5a, 0x5a])
        let shared = Array("4096 4096 shared".utf8).withUnsafeBytes { value in
            answer { fs.setxattr(ctx, inode: host, name: GmemXattr.setAttributes, value: value, flags: 0, reply: $0) }
        }
        guard case .success? = shared else { Issue.record("conversion: \(String(describing: shared))"); return }
        #expect(node.ghosts.withLock { $0.isEmpty })
        let again = data.withUnsafeBytes { b in answer { fs.write(ctx, inode: host, offset: 0, data: b, file: writeback, reply: $0) } }
        guard case .written? = again else { Issue.record("writeback: \(String(describing: again))"); return }
        #expect(try guestBytes(1) == [0x5a, 0x5a])
    }

    /// Times taken by different threads may be out of order: elapsed time never underflows.
    @Test func populateGuardElapsedNeverUnderflows() {
        #expect(PopulateGuard.elapsed(since: 5, now: 9) == 4)
        #expect(PopulateGuard.elapsed(since: 9, now: 5) == 0)
    }

    /// A pin through one handle refuses a to-private conversion with the struct copied back
    /// (error_offset = the pinned page); the copy-back needs room for the struct; release drops it.
    @Test func pinnedPageFailsTheIoctlWithErrorOffset() throws {
        let (fs, f) = try filesystem()
        guard case .open(let opened)? = answer({ fs.open(ctx, inode: host, flags: O_RDONLY, reply: $0) }) else {
            Issue.record("open did not answer an open file"); return
        }
        let holder = FileInfo(handle: opened.handle, flags: O_RDONLY)
        func call(_ command: UInt32, _ bytes: [UInt8], file: FileInfo = handle(O_RDWR), outputSize: Int = 128) -> RecordedReply? {
            bytes.withUnsafeBytes { input in
                answer { fs.ioctl(ctx, inode: host, command: command, input: input, outputSize: outputSize, file: file, reply: $0) }
            }
        }
        let pin = GmemPageReference(offset: 2 * pageSize, size: pageSize).encode()
        guard case .ioctl(0, let none)? = call(GmemPageReference.pinNumber, pin, file: holder), none.isEmpty else {
            Issue.record("pin refused"); return
        }
        let convert = KVMMemoryAttributes2(offset: 0, size: 4 * pageSize, attributes: GmemAttributeName.privateBit)
        guard case .ioctlFailure(.resourceTemporarilyUnavailable, let output)? = call(KVMMemoryAttributes2.ioctlNumber, convert.encode()) else {
            Issue.record("conversion not refused with EAGAIN and a copy-back"); return
        }
        var expected = convert
        expected.errorOffset = 2 * pageSize
        #expect(output == expected.encode())
        // Without room for the struct: plain EAGAIN.
        guard case .error(.resourceTemporarilyUnavailable)? = call(KVMMemoryAttributes2.ioctlNumber, convert.encode(), outputSize: 0) else {
            Issue.record("conversion without output room not refused with EAGAIN"); return
        }
        #expect(f.attributes(at: 0) == .shared && f.stats.references == 1)
        fs.release(inode: host, file: holder)
        #expect(f.stats.references == 0)
        guard case .ioctl(0, _)? = call(KVMMemoryAttributes2.ioctlNumber, convert.encode()) else { Issue.record("conversion refused"); return }
        #expect(f.attributes(at: 2 * pageSize) == .private)
    }

    @Test func lseekRules() throws {
        let (fs, f) = try filesystem()
        try f.allocate(offset: 2 * pageSize, length: pageSize)
        func seek(_ offset: Int, _ whence: Int32) -> RecordedReply? {
            answer { fs.lseek(ctx, inode: host, offset: offset, whence: whence, file: handle(O_RDONLY), reply: $0) }
        }
        #expect(seek(0, SEEK_END)?.errno == .invalidArgument)
        #expect(seek(-1, SEEK_END)?.errno == .invalidArgument)
        #expect(seek(-1, Int32(CLINUX_SEEK_DATA))?.errno == .noSuchAddressOrDevice)
        #expect(seek(3 * Int(pageSize), Int32(CLINUX_SEEK_DATA))?.errno == .noSuchAddressOrDevice)
        guard case .offset(let o)? = seek(0, Int32(CLINUX_SEEK_DATA)) else { Issue.record("no offset"); return }
        #expect(o == 2 * Int(pageSize))
    }

    @Test func namesComeOnlyFromTheCreateXattr() throws {
        let (fs, _) = try filesystem()
        #expect(answer { fs.create(ctx, parent: InodeNumber.root, name: "g", mode: 0o600, flags: O_CREAT | O_RDWR, reply: $0) }?.errno == .notPermitted)
        #expect(answer { fs.mkdir(ctx, parent: InodeNumber.root, name: "d", mode: 0o700, reply: $0) }?.errno == .notPermitted)
        #expect(answer { fs.rename(ctx, parent: InodeNumber.root, name: "f", newParent: InodeNumber.root, newName: "g", reply: $0) }?.errno == .notPermitted)
        #expect(answer { fs.unlink(ctx, parent: InodeNumber.guestDirectory, name: "f", reply: $0) }?.errno == .notPermitted)
        #expect(answer { fs.unlink(ctx, parent: InodeNumber.root, name: "nope", reply: $0) }?.errno == .noSuchFileOrDirectory)
        #expect(answer { fs.lookup(ctx, parent: host, name: "f", reply: $0) }?.errno == .notDirectory)
        guard case .entry(let e)? = answer({ fs.lookup(ctx, parent: InodeNumber.root, name: "f", reply: $0) }) else {
            Issue.record("lookup did not answer an entry"); return
        }
        #expect(e.inode == host && e.attributes.st_size == Int(8 * pageSize))
        guard case .entries(let list)? = answer({ fs.readdir(ctx, inode: .root, offset: 0, size: 4096, reply: $0) }) else {
            Issue.record("readdir did not answer entries"); return
        }
        #expect(list.map(\.name) == [".", "..", ".guest", "f"])
        #expect(answer { fs.unlink(ctx, parent: InodeNumber.root, name: "f", reply: $0) }.map { if case .success = $0 { true } else { false } } == true)
        #expect(answer { fs.getattr(ctx, inode: host, reply: $0) }?.errno == .noSuchFileOrDirectory)
    }

    @Test func readAndWriteAnswers() throws {
        let (fs, _) = try filesystem()
        let bytes: [UInt8] = [1, 2, 3]
        let w = bytes.withUnsafeBytes { b in answer { fs.write(ctx, inode: host, offset: 5, data: b, file: handle(O_RDWR), reply: $0) } }
        guard case .written(3)? = w else { Issue.record("write: \(String(describing: w))"); return }
        guard case .data(let got)? = answer({ fs.read(ctx, inode: guest, offset: 4, size: 5, file: handle(O_RDONLY), reply: $0) }) else {
            Issue.record("read did not answer data"); return
        }
        #expect(got == [0, 1, 2, 3, 0])
        #expect(answer { fs.read(ctx, inode: host, offset: -1, size: 5, file: handle(O_RDONLY), reply: $0) }?.errno == .invalidArgument)
        let (kernel, _) = try filesystem(.kernel)
        let k = bytes.withUnsafeBytes { b in answer { kernel.write(ctx, inode: host, offset: 0, data: b, file: handle(O_RDWR), reply: $0) } }
        #expect(k?.errno == .invalidArgument)
    }

    /// getxattr and listxattr share the size protocol: 0 asks for the length, a smaller buffer
    /// is ERANGE, a large enough one gets the value.
    @Test func xattrSizeProtocol() throws {
        let (fs, _) = try filesystem()
        let value = Array((try fs.xattrValue(of: #require(fs.node(host)), name: GmemXattr.flags)).utf8)
        let names = GmemXattr.fileReadable.reduce(into: [UInt8]()) { $0 += Array($1.utf8) + [0] }
        for (length, get) in [(value.count, { (size: Int) in self.answer { fs.getxattr(ctx, inode: self.host, name: GmemXattr.flags, size: size, reply: $0) } }),
                              (names.count, { (size: Int) in self.answer { fs.listxattr(ctx, inode: self.host, size: size, reply: $0) } })] {
            guard case .xattrSize(let n)? = get(0) else { Issue.record("no size answer"); continue }
            #expect(n == length)
            #expect(get(length - 1)?.errno == .outOfRange)
            guard case .xattrValue(let bytes)? = get(length + 10) else { Issue.record("no value answer"); continue }
            #expect(bytes.count == length)
        }
    }

    /// A reply dropped unanswered is recorded (the kernel would get EIO; the log says so);
    /// errno 0 is not an error answer.
    @Test func droppedAndZeroErrnoReplies() {
        let r = ReplyRecorder()
        do { _ = Reply<AttrReply>(recordingInto: r) }
        guard case .dropped? = r.only else { Issue.record("no dropped reply: \(r.all)"); return }
        let z = ReplyRecorder()
        Reply<AttrReply>(recordingInto: z).error(Errno(rawValue: 0))
        #expect(z.only?.errno == .ioError)
    }
}
