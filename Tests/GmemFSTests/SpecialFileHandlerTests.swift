import FuseKit
import Glibc
import GmemABI
import GmemCore
@testable import GmemFS
import Logging
import SystemPackage
import Testing

/// The dispatch of `.trace` and `.maps/NAME`, mount-free: handlers answer into a
/// ``ReplyRecorder``. The mount tests (`TraceTests`, `MapsTests`) cover what `cat` sees.
@Suite struct SpecialFileHandlerTests {
    let ctx = RequestContext(uid: 0, gid: 0, pid: 0)
    let host = InodeNumber.firstFile

    func filesystem() throws -> GmemFilesystem {
        let fs = GmemFilesystem(options: GmemOptions(), notifier: Notifier(), logger: Logger(label: "test"))
        try fs.createFile(CreateRequest(name: "f", size: 4 * pageSize, flags: [.initShared]))
        return fs
    }

    func answer<Kind>(_ call: (consuming Reply<Kind>) -> Void) -> RecordedReply? {
        let r = ReplyRecorder()
        call(Reply(recordingInto: r))
        return r.only
    }

    func setxattr(_ fs: GmemFilesystem, _ inode: InodeNumber, _ name: String, _ value: String) -> RecordedReply? {
        let bytes = Array(value.utf8)
        return bytes.withUnsafeBytes { v in answer { fs.setxattr(ctx, inode: inode, name: name, value: v, flags: 0, reply: $0) } }
    }

    func openHandle(_ fs: GmemFilesystem, _ inode: InodeNumber) -> OpenOptions? {
        if case .open(let o)? = answer({ fs.open(ctx, inode: inode, flags: O_RDONLY, reply: $0) }) { return o }
        return nil
    }

    @Test func namesOpensAndRefusals() throws {
        let fs = try filesystem()
        guard case .entry(let trace)? = answer({ fs.lookup(ctx, parent: InodeNumber.root, name: GmemSpecialName.trace, reply: $0) }),
              case .entry(let maps)? = answer({ fs.lookup(ctx, parent: InodeNumber.root, name: GmemSpecialName.maps, reply: $0) }),
              case .entry(let map)? = answer({ fs.lookup(ctx, parent: maps.inode, name: "f", reply: $0) }) else {
            Issue.record("lookups did not answer entries"); return
        }
        #expect(trace.attributes.st_mode == S_IFREG | 0o400 && maps.attributes.st_mode == S_IFDIR | 0o555)
        #expect(map.inode == host.mapFile && map.attributes.st_mode == S_IFREG | 0o400)
        #expect(answer { fs.lookup(ctx, parent: maps.inode, name: "nope", reply: $0) }?.errno == .noSuchFileOrDirectory)
        // Read-only even for root; a directory is not opened as a file.
        for inode in [trace.inode, map.inode] {
            #expect(answer { fs.open(ctx, inode: inode, flags: O_RDWR, reply: $0) }?.errno == .permissionDenied)
            #expect(answer { fs.open(ctx, inode: inode, flags: O_RDONLY | O_TRUNC, reply: $0) }?.errno == .permissionDenied)
        }
        #expect(answer { fs.open(ctx, inode: maps.inode, flags: O_RDONLY, reply: $0) }?.errno == .isDirectory)
        let t = try #require(openHandle(fs, trace.inode)), m = try #require(openHandle(fs, map.inode))
        #expect(t.directIO && t.nonseekable && m.directIO && !m.nonseekable)
        // No xattrs, no ioctl on them.
        #expect(answer { fs.listxattr(ctx, inode: trace.inode, size: 0, reply: $0) }.map { if case .xattrSize(0) = $0 { true } else { false } } == true)
        let ioctl = answer { fs.ioctl(ctx, inode: map.inode, command: KVMMemoryAttributes2.ioctlNumber, input: UnsafeRawBufferPointer(start: nil, count: 0),
                                      outputSize: 0, file: FileInfo(handle: m.handle, flags: O_RDWR), reply: $0) }
        #expect(ioctl?.errno == .inappropriateIOCTLForDevice)
        // A handle the daemon never gave out.
        #expect(answer { fs.read(ctx, inode: map.inode, offset: 0, size: 10, file: FileInfo(handle: FuseFileHandle(999), flags: O_RDONLY), reply: $0) }?.errno == .badFileDescriptor)
        fs.release(inode: trace.inode, file: FileInfo(handle: t.handle, flags: O_RDONLY))
        fs.release(inode: map.inode, file: FileInfo(handle: m.handle, flags: O_RDONLY))
    }

    /// A map reads the one attribute-line printer's text, snapshotted at open.
    @Test func mapIsTheAttributeLinesAtOpen() throws {
        let fs = try filesystem()
        let inode = host.mapFile
        #expect(setxattr(fs, host, GmemXattr.setAttributes, "4096 4096 private").map { if case .success = $0 { true } else { false } } == true)
        let h = try #require(openHandle(fs, inode))
        _ = setxattr(fs, host, GmemXattr.setAttributes, "0 4096 private")   // after the open: not in this snapshot
        let read = answer { fs.read(ctx, inode: inode, offset: 0, size: 4096, file: FileInfo(handle: h.handle, flags: O_RDONLY), reply: $0) }
        guard case .data(let bytes)? = read else { Issue.record("\(String(describing: read))"); return }
        let expected = [AttributeLine(start: 0, end: 0x1000, attribute: .shared), AttributeLine(start: 0x1000, end: 0x2000, attribute: .private),
                        AttributeLine(start: 0x2000, end: 0x4000, attribute: .shared)].map(\.text).joined()
        #expect(String(decoding: bytes, as: UTF8.self) == expected)
        let past = answer { fs.read(ctx, inode: inode, offset: bytes.count, size: 4096, file: FileInfo(handle: h.handle, flags: O_RDONLY), reply: $0) }
        guard case .data(let none)? = past else { Issue.record("\(String(describing: past))"); return }
        #expect(none.isEmpty)
        fs.release(inode: inode, file: FileInfo(handle: h.handle, flags: O_RDONLY))
    }

    /// A refused conversion is traced with its errno, an accepted one with what it did, in the
    /// interface's line format; a parked READ is answered EINTR when its file is released.
    @Test func conversionsReachAnOpenTrace() throws {
        let fs = try filesystem()
        let h = try #require(openHandle(fs, InodeNumber.trace))
        let file = FileInfo(handle: h.handle, flags: O_RDONLY)
        #expect(setxattr(fs, host, GmemXattr.setAttributes, "1 4096 private")?.errno == .invalidArgument)
        _ = setxattr(fs, host, GmemXattr.setAttributes, "0 4096 private")
        // Few events: the READ is parked and answered by the flusher within milliseconds.
        let r = ReplyRecorder()
        fs.read(ctx, inode: .trace, offset: 0, size: 65536, file: file, reply: Reply(recordingInto: r))
        var waited = 0
        while r.all.isEmpty && waited < 5000 { usleep(1000); waited += 1 }
        guard case .data(let bytes)? = r.only else { Issue.record("\(r.all)"); return }
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n").compactMap { TraceLine($0) }
        let events = lines.compactMap { if case .event(let e) = $0 { e } else { nil } }
        #expect(events.map { "\($0.event) \($0.start)-\($0.end) \($0.outcome)" } ==
                ["convert 0-0 EINVAL", "invalidate 0-4096 ok", "convert 0-4096 became-private"], "\(events)")
        #expect(events.allSatisfy { $0.file == "f" && $0.pid == nil })
        #expect(events.first?.detail.map { $0.0 + "=" + $0.1 } == ["via=xattr"])
        // Nothing new: this READ parks, and the release answers it.
        let parked = ReplyRecorder()
        fs.read(ctx, inode: .trace, offset: 0, size: 65536, file: file, reply: Reply(recordingInto: parked))
        #expect(parked.all.isEmpty)
        fs.release(inode: .trace, file: file)
        #expect(parked.only?.errno == .interrupted)
    }
}
