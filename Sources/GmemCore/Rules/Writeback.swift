import Synchronization

/// The kernel's recorded writeback error (`AS_ENOSPC` on the file's mapping): a writeback of
/// pages dirtied through a shared mapping that failed at the memory cap has nobody waiting for
/// its reply, so the error is kept and reported once, by the next `fsync(2)` or close.
///
/// Rules:
/// - only a writeback (`writepage`) failing with ENOSPC is recorded (``record(_:writepage:)``);
/// - `fsync` reports it (``take()``) in both fidelities, after the fidelity's own check;
/// - close (FUSE's FLUSH) reports it only with ``Fidelity/tools`` (a guest_memfd's close
///   cannot fail: ``takeAtClose(_:)``).
public final class WritebackError: Sendable {
    private let failed = Atomic<Bool>(false)

    public init() {}

    /// Records `error` if it is a writeback's ENOSPC; true when it was recorded.
    public func record(_ error: GmemError, writepage: Bool) -> Bool {
        guard writepage, case .noSpace = error else { return false }
        failed.store(true, ordering: .relaxed)
        return true
    }

    /// The recorded error, cleared: ENOSPC once after a failed writeback, nil otherwise.
    public func take() -> GmemError? {
        failed.exchange(false, ordering: .relaxed) ? .noSpace("a writeback of mapped pages failed at the memory cap") : nil
    }

    /// ``take()`` for a close: nil (and nothing cleared) with ``Fidelity/kernel``.
    public func takeAtClose(_ fidelity: Fidelity) -> GmemError? {
        fidelity == .kernel ? nil : take()
    }
}
