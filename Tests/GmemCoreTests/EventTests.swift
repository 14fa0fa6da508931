import GmemABI
import GmemCore
import GmemTestSupport
import SystemPackage
import Testing

/// The event seam: the hub's rings against a naive model, the cost contract, the line format.
struct EventTests {
    static func event(_ i: Int, file: String = "f") -> Event {
        Event(time: UInt64(i), kind: .convert, file: file, offset: UInt64(i) * 4096, length: 4096, outcome: .ok,
              requester: .none)
    }

    /// Random pushes and drains against an unbounded list that forgets the oldest beyond capacity:
    /// every event is delivered once, in order, or counted as lost exactly once.
    @Test(arguments: [1, 3, 64]) func ringMatchesNaiveModel(capacity: Int) {
        let seed: UInt64 = 13
        var rng = SplitMix64(seed: seed)
        var ring = EventRing(capacity: capacity)
        var model: [Int] = [], modelLost: UInt64 = 0
        var next = 0
        var delivered: [Int] = [], lostTotal: UInt64 = 0
        for _ in 0..<20_000 {
            if rng.next(below: 3) != 0 {
                ring.push(Self.event(next))
                model.append(next)
                next += 1
                if model.count > capacity { model.removeFirst(); modelLost += 1 }
            } else {
                let max = Int(rng.next(below: UInt64(capacity) + 2))
                let (lost, events) = ring.drain(max: max)
                let take = min(max, model.count)
                #expect(lost == modelLost && events.map { Int($0.time) } == Array(model.prefix(take)), "seed \(seed)")
                model.removeFirst(take)
                modelLost = 0
                delivered += events.map { Int($0.time) }
                lostTotal += lost
            }
            #expect(ring.count == model.count)
        }
        let (lost, rest) = ring.drain(max: .max)
        delivered += rest.map { Int($0.time) }
        lostTotal += lost
        #expect(delivered == delivered.sorted() && Set(delivered).count == delivered.count)
        #expect(UInt64(delivered.count) + lostTotal == UInt64(next))
    }

    /// Nobody listening: the event is never built. Subscribers each get every event from their
    /// subscription on; a drained or unsubscribed ring gets nothing more.
    @Test func hubFansOutOnlyToSubscribers() {
        let hub = EventHub(capacity: 8)
        var built = 0
        func make(_ i: Int) -> Event { built += 1; return Self.event(i) }
        hub.emit(make(0))
        #expect(built == 0 && !hub.isObserved && hub.start() == nil)
        hub.emit(since: hub.start()) { make(0) }
        #expect(built == 0)
        let a = hub.subscribe()
        hub.emit(make(1))
        let b = hub.subscribe()
        hub.emit(make(2))
        #expect(built == 2 && hub.isObserved)
        #expect(hub.drain(a, max: 10).events.map(\.time) == [1, 2])
        #expect(hub.drain(b, max: 10).events.map(\.time) == [2])
        hub.unsubscribe(a)
        hub.unsubscribe(a)   // twice: ignored
        let t0 = hub.start()
        #expect(t0 != nil)
        hub.emit(since: t0) { make(3) }
        #expect(hub.drain(a, max: 10).events.isEmpty)
        let e = hub.drain(b, max: 10).events
        #expect(e.map(\.time) == [3] && e[0].duration == e[0].time &- t0!)
        for i in 0..<20 { hub.emit(make(10 + i)) }
        #expect(hub.pending(b).events == 8 && hub.pending(b).lost)
        let (lost, events) = hub.drain(b, max: 100)
        #expect(lost == 12 && events.map(\.time) == (22..<30).map(UInt64.init))
        hub.unsubscribe(b)
        hub.emit(make(99))
        #expect(!hub.isObserved && built == 23)
    }

    @Test func traceLineFormat() {
        var e = Event(time: 5_123_004_211_999, kind: .readRefused, file: "vm mem\\1", offset: 0x1000, length: 0x2000,
                      outcome: .failed(.permissionDenied),
                      requester: .init(pid: 4242, uid: 0, gid: 0, comm: "my cat"), detail: "cache=none")
        #expect(e.traceLine == "5123.004211 vm\\x20mem\\x5c1 read-refused 1000-3000 4242 my\\x20cat EACCES - cache=none\n")
        e.kind = .convert; e.outcome = .becamePrivate; e.duration = 38_249; e.detail = ""; e.requester = .none; e.file = "f"
        e.time = 7_000_000_001
        #expect(e.traceLine == "7.000000 f convert 1000-3000 - - became-private 38.2us\n")
        #expect(Event.lostLine(17) == "lost 17 events\n")
        #expect(Event.Outcome.failed(.noSpace).name == "ENOSPC" && Event.Outcome.failed(Errno(rawValue: 200)).name == "E200")
        #expect(Event.Kind.allCases.map(\.rawValue) == ["create", "remove", "convert", "invalidate", "read-refused",
                                                          "write-refused", "punch", "allocate", "guest-write", "pin", "unpin", "inject"])
        // What the daemon prints, gmemctl parses back field for field (one format, in GmemABI).
        for line in [e.traceLine, Event.lostLine(3)] {
            #expect(TraceLine(line.dropLast())?.text == line, "\(line)")
        }
        #expect(TraceLine(e.traceLine.dropLast()) == .event(e.traceEvent))
        #expect(GmemErrnoName.number("EAGAIN") == 11 && GmemErrnoName.number("E200") == 200 && GmemErrnoName.number("EXYZ") == nil)
        #expect(TraceLine.escape("é\u{7f}\t") == "é\\x7f\\x09")
    }
}
