import Glibc

/// A value that can only be reached under its reader-writer lock (pthread, writer-preferring,
/// non-recursive): read inside ``withReadLock(_:)``, written inside ``withWriteLock(_:)``.
/// Writers are preferred so that conversions are not starved by a steady stream of reads.
///
/// Rules for every closure passed here:
/// - It must not take this lock again, directly or by calling back into the lock's owner
///   (for a `GuestMemFile`: any of its methods). The lock is not recursive, and because it
///   prefers writers a nested read deadlocks as soon as a writer (a conversion) waits between
///   the outer and the inner read.
/// - It must not wait for another FUSE request or invalidate kernel caches (docs/locking.md,
///   "Holds no lock"); the one exception is FuseKit's `Notifier`, whose invalidations run
///   under its own lock's read side, the only lock they hold.
public final class RWLocked<Value: ~Copyable>: @unchecked Sendable {
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>
    private var value: Value

    public init(_ value: consuming Value) {
        self.value = value
        lock = .allocate(capacity: 1)
        var attr = pthread_rwlockattr_t()
        pthread_rwlockattr_init(&attr)
        pthread_rwlockattr_setkind_np(&attr, Int32(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP))
        pthread_rwlock_init(lock, &attr)
        pthread_rwlockattr_destroy(&attr)
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }

    /// Runs `body` with the value, the lock held shared (other readers may run alongside).
    /// `body` must not call back into the owner (see the type's rules).
    public func withReadLock<T, E>(_ body: (borrowing Value) throws(E) -> T) throws(E) -> T {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body(value)
    }

    /// Runs `body` with the value, the lock held exclusive. `body` must not call back into the
    /// owner (see the type's rules).
    public func withWriteLock<T, E>(_ body: (inout Value) throws(E) -> T) throws(E) -> T {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body(&value)
    }
}
