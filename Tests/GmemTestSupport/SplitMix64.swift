/// splitmix64 (Steele, Lea, Flood 2014; Vigna's constants 0x9E3779B97F4A7C15,
/// 0xBF58476D1CE4E5B9, 0x94D049BB133111EB): a tiny seeded generator whose sequences are
/// identical to Vigna's C reference (the generator of the tree benchmark's workload,
/// docs/performance.md). The one copy the tests use; they print the seed they use so that a
/// failure can be replayed exactly.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// Increments the state, then mixes the incremented state.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A value in `0..<bound` (`bound > 0`), by modulo (bias is irrelevant for tests).
    public mutating func next(below bound: UInt64) -> UInt64 { next() % bound }
}
