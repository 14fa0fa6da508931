import GmemABI

/// The text form of an event: one line of `MOUNTPOINT/.trace`, in the interface's format
/// (``TraceLine``, docs/trace.md).
extension Event {
    public var traceLine: String { TraceLine.event(traceEvent).text }

    /// The event as the interface's line fields.
    public var traceEvent: TraceEvent {
        TraceEvent(time: TraceLine.timestamp(nanoseconds: time), file: file, event: kind.rawValue,
                   start: offset, end: offset &+ length, pid: requester.pid == 0 ? nil : requester.pid,
                   comm: requester.comm.isEmpty || requester.comm == "-" ? nil : requester.comm,
                   outcome: outcome.name, durationText: duration.map { TraceLine.duration(nanoseconds: $0) },
                   detail: detail.split(separator: " ").map { w in
                       let kv = w.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                       return (String(kv[0]), kv.count > 1 ? String(kv[1]) : "")
                   })
    }

    /// The line a reader gets for `n` events its ring dropped.
    public static func lostLine(_ n: UInt64) -> String { TraceLine.lost(n).text }
}
