import CFuse

/// The identity of a request in flight (its `fuse_req_t`): equal for the same request until
/// it is answered; afterwards the same value may name a new request.
public struct RequestID: Hashable, Sendable {
    let raw: UInt
}

/// Hears FUSE_INTERRUPT: the kernel sends it when the process waiting for a request gets a
/// signal. Keep one for the whole session: libfuse holds it unretained.
///
/// The body runs on a loop thread while libfuse holds the request's own lock: it may answer
/// the request (through the reply its owner parked), but must not register interrupts itself.
/// It may also run after the request was answered elsewhere (a race libfuse allows): compare
/// the identity with what is still parked, and ignore it otherwise.
public final class InterruptHandler: Sendable {
    let body: @Sendable (RequestID) -> Void
    public init(_ body: @escaping @Sendable (RequestID) -> Void) { self.body = body }
}

/// A request may be answered from any thread (libfuse serialises writes to /dev/fuse; a
/// ``ReplyRecorder`` locks): a reply may be parked and answered later by another thread. It
/// stays use-once.
extension Reply: @unchecked Sendable {}

extension Reply {
    /// The request's identity; for a recorded reply, its recorder's (one request per recorder).
    public var id: RequestID {
        switch target {
        case .request(let req, _): RequestID(raw: UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(req))))
        case .recorder(let r): RequestID(raw: UInt(bitPattern: Int(bitPattern: r.toOpaque())))
        }
    }

    /// Calls `handler` with this request's id when the kernel interrupts it, at once if it
    /// already has. Call **before** parking the reply where another thread may answer it (a
    /// request answered meanwhile would be freed under this call), with no lock held that the
    /// handler takes. A recorded reply is never interrupted (tests call the handler's body).
    public func notifyInterrupt(to handler: InterruptHandler) {
        guard case .request(let req, _) = target else { return }
        fuse_req_interrupt_func(req, { req, data in
            guard let req, let data else { return }
            let id = RequestID(raw: UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(req))))
            Unmanaged<InterruptHandler>.fromOpaque(data).takeUnretainedValue().body(id)
        }, Unmanaged.passUnretained(handler).toOpaque())
    }
}
