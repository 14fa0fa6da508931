import CFuse
import Glibc

/// How a session exchanges requests with the kernel (docs/architecture.md, "Transports").
public enum Transport: String, Sendable, CaseIterable {
    /// Threads reading and writing `/dev/fuse` (libfuse's multi-threaded loop).
    case classic
    /// FUSE over io_uring: one ring and one pinned thread per possible CPU, each request served
    /// on the CPU of the process that made it. Falls back to `classic` (with one log line
    /// saying why) when the kernel cannot: docs/fuse-kernel-notes.md, "FUSE over io_uring".
    case ioUring = "io_uring"
}

/// The io_uring transport of one session: CFuse's `cfuse_uring` (the only Swift file that
/// calls it). Started in ``Session/run(maxThreads:transport:)`` after any fork, stopped after
/// unmount.
final class UringTransport: @unchecked Sendable {
    let raw: UnsafeMutablePointer<cfuse_uring>

    private init(_ raw: UnsafeMutablePointer<cfuse_uring>) { self.raw = raw }

    /// The log line of a session that asked for io_uring and serves classically.
    static func fallbackLine(_ why: String) -> String { "io_uring not used, serving /dev/fuse classically: \(why)" }

    /// Starts the ring threads and installs the custom io that negotiates the rings in INIT.
    /// Returns nil (after logging why) when io_uring cannot be used: the session stays classic.
    static func start(session se: OpaquePointer, box: FilesystemBox) -> UringTransport? {
        var why = [CChar](repeating: 0, count: 256)
        let report: @convention(c) (UnsafeMutableRawPointer?, Int32, UnsafePointer<CChar>?) -> Void = { _, level, msg in
            guard let msg else { return }
            let line = String(cString: msg)
            if level == 0 { FuseKitLog.logger.info("\(line)") } else { FuseKitLog.logger.notice("\(line)") }
        }
        guard let raw = cfuse_uring_start(se, report, nil, &why, why.count) else {
            let reason = String(decoding: why.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            FuseKitLog.logger.notice("\(fallbackLine(reason))")
            return nil
        }
        let transport = UringTransport(raw)
        box.uring = raw
        var io = fuse_custom_io()
        io.read = { fd, buf, len, userdata in
            let box = Unmanaged<FilesystemBox>.fromOpaque(userdata!).takeUnretainedValue()
            return cfuse_uring_read(box.uring, fd, buf, len)
        }
        io.writev = { fd, iov, count, userdata in
            let box = Unmanaged<FilesystemBox>.fromOpaque(userdata!).takeUnretainedValue()
            return cfuse_uring_writev(box.uring, fd, iov, count)
        }
        let rc = fuse_session_custom_io(se, &io, fuse_session_fd(se))
        if rc != 0 {
            FuseKitLog.logger.notice("\(fallbackLine("fuse_session_custom_io failed (\(rc))"))")
            cfuse_uring_begin_stop(raw)
            _ = cfuse_uring_finish_stop(raw)
            box.uring = nil
            return nil
        }
        return transport
    }

    /// Starts the death watcher of docs/fuse-kernel-notes.md ("FUSE over io_uring", kill -9)
    /// for the auto_unmount mount at `mountpoint`: returns the descriptor to hand to
    /// ``cleanStop(watcher:)`` on a clean stop, or nil when it cannot start.
    static func watchDeath(mountpoint: String) -> Int32? {
        let fd = mountpoint.withCString { cfuse_uring_watch_death($0) }
        return fd >= 0 ? fd : nil
    }

    /// Tells the death watcher this daemon stops cleanly.
    static func cleanStop(watcher fd: Int32) { cfuse_uring_watch_clean_stop(fd) }

    /// Returns once the replies handed to ring threads have been submitted (at most 200 ms).
    func drainCommits() { cfuse_uring_drain_commits(raw, 200) }

    /// Makes the ring threads leave their loops; ``finishStop()`` then frees everything.
    func beginStop() { cfuse_uring_begin_stop(raw) }

    /// Joins the threads, closes the rings and frees the buffers; returns the number of
    /// requests the rings served. Call once, after ``beginStop()``, with no call off the ring
    /// left in flight.
    func finishStop() -> UInt64 { cfuse_uring_finish_stop(raw) }

    /// Runs `body` where it may wait for the kernel to serve this session: directly, unless
    /// the caller is a ring thread, which must keep its ring going: then on a worker, while
    /// the ring thread serves (``Notifier/invalidate(inode:offset:length:)``).
    static func callOffRing(_ u: UnsafeMutablePointer<cfuse_uring>?, _ body: () -> Void) {
        guard let u, cfuse_uring_on_ring_thread(u) != 0 else { return body() }
        withoutActuallyEscaping(body) { body in
            var call = body
            withUnsafeMutablePointer(to: &call) { p in
                cfuse_uring_call_off_ring(u, { arg in
                    arg!.assumingMemoryBound(to: (() -> Void).self).pointee()
                }, p)
            }
        }
    }
}
