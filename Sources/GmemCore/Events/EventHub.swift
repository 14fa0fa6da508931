import Synchronization

/// Where the core reports what it did: one sink, shaped like the invalidation notifier, fanned
/// out to every subscriber's bounded ring (`MOUNTPOINT/.trace` opens one each).
///
/// Contract:
/// - With no subscriber, ``emit(_:)`` costs one relaxed atomic load: the event (and the
///   requester's `/proc` lookup the caller folds into it) is never built.
/// - ``emit(_:)`` never blocks on a consumer: a ring that is full drops its oldest event and
///   counts it, so a reader that falls behind loses events instead of slowing anyone.
/// - The hub's lock is a leaf: it is held to push or drain a ring, never across a call out.
public final class EventHub: Sendable {
    /// A subscriber's handle.
    public struct Subscription: Hashable, Sendable {
        let id: UInt64
    }

    /// Events each subscriber's ring holds before it drops the oldest.
    public let capacity: Int
    private let subscribers = Atomic<Int>(0)
    /// The rings in subscription order (few: one per open of `.trace`).
    private let state = Mutex<(nextID: UInt64, rings: [(id: UInt64, ring: EventRing)])>((1, []))

    public init(capacity: Int = 4096) {
        precondition(capacity > 0, "a ring holds at least one event")
        self.capacity = capacity
    }

    /// Whether anyone is listening (one relaxed atomic load).
    @inline(__always)
    public var isObserved: Bool { subscribers.load(ordering: .relaxed) != 0 }

    /// Records the event `make()` builds, if anyone listens.
    @inline(__always)
    public func emit(_ make: @autoclosure () -> Event) {
        guard isObserved else { return }
        deliver(make())
    }

    /// The start of a timed event: the monotonic time if anyone listens, else nil (one load).
    @inline(__always)
    public func start() -> UInt64? { isObserved ? Event.now() : nil }

    /// Records a timed event begun at `start` (nothing when `start` is nil: nobody was
    /// listening when the work began); its duration runs from `start` to the event's time.
    @inline(__always)
    public func emit(since start: UInt64?, _ make: () -> Event) {
        guard let start else { return }
        var event = make()
        event.duration = event.time &- start
        deliver(event)
    }

    private func deliver(_ event: Event) {
        state.withLock { s in
            // By index, in place: iterating the array itself would share its storage, and each
            // push would then copy a whole ring (4,096 events) before writing.
            for i in s.rings.indices { s.rings[i].ring.push(event) }
        }
    }

    /// Starts a ring that receives every event from now on.
    public func subscribe() -> Subscription {
        let id = state.withLock { s -> UInt64 in
            let id = s.nextID
            s.nextID += 1
            s.rings.append((id, EventRing(capacity: capacity)))
            return id
        }
        subscribers.add(1, ordering: .relaxed)
        return Subscription(id: id)
    }

    /// Ends a subscription and discards what it had not drained. Unknown handles are ignored.
    public func unsubscribe(_ s: Subscription) {
        let removed = state.withLock { st -> Bool in
            guard let i = st.rings.firstIndex(where: { $0.id == s.id }) else { return false }
            st.rings.remove(at: i)
            return true
        }
        if removed { subscribers.subtract(1, ordering: .relaxed) }
    }

    /// Takes up to `max` of the subscriber's oldest events, and how many it lost (dropped
    /// because its ring was full) before them; both are then gone from the ring.
    public func drain(_ s: Subscription, max: Int) -> (lost: UInt64, events: [Event]) {
        state.withLock { st in
            guard let i = st.rings.firstIndex(where: { $0.id == s.id }) else { return (0, []) }
            return st.rings[i].ring.drain(max: max)
        }
    }

    /// Events waiting in the subscriber's ring, and whether losses are waiting to be reported.
    public func pending(_ s: Subscription) -> (events: Int, lost: Bool) {
        state.withLock { st in st.rings.first(where: { $0.id == s.id }).map { ($0.ring.count, $0.ring.lost > 0) } ?? (0, false) }
    }
}

/// A bounded FIFO of events that drops its oldest event when full and counts the drops.
///
/// Invariants:
/// - `0 <= count <= capacity`; the events are `storage[head ..< head + count]` modulo capacity,
///   oldest first;
/// - `lost` is the number of events dropped since the last ``drain(max:)`` that returned it; each
///   of them is older than every event still held (only the oldest is ever dropped), so a
///   reader that prints "lost N" before the drained events keeps the order of what happened.
public struct EventRing: Sendable {
    public let capacity: Int
    private var storage: [Event?]
    private var head = 0
    public private(set) var count = 0
    public private(set) var lost: UInt64 = 0

    public init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
        storage = Array(repeating: nil, count: capacity)
    }

    public mutating func push(_ e: Event) {
        if count == capacity {
            storage[head] = nil
            head = (head + 1) % capacity
            count -= 1
            lost &+= 1
        }
        storage[(head + count) % capacity] = e
        count += 1
    }

    /// The losses not yet reported, then up to `max` oldest events (removed).
    public mutating func drain(max: Int) -> (lost: UInt64, events: [Event]) {
        let n = Swift.min(Swift.max(0, max), count)
        var out: [Event] = []
        out.reserveCapacity(n)
        for _ in 0..<n {
            out.append(storage[head]!)
            storage[head] = nil
            head = (head + 1) % capacity
            count -= 1
        }
        defer { lost = 0 }
        return (lost, out)
    }
}
