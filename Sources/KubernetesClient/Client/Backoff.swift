/// Exponential backoff with full jitter.
public enum Backoff {
    /// `base * 2^(attempt-1)`, capped, then a random point in its upper half (so retries of many clients spread).
    public static func jittered(base: Duration, attempt: Int, cap: Duration) -> Duration {
        let exponent = min(max(attempt - 1, 0), 30)
        let raw = base * (1 << exponent)
        let capped = raw > cap ? cap : raw
        return capped * Double.random(in: 0.5...1.0)
    }
}

/// A token bucket for the optional client-side rate limit (`--kube-api-qps/--kube-api-burst`).
actor TokenBucket {
    private let qps: Double
    private let burst: Double
    private var tokens: Double
    private var last = ContinuousClock.now

    init(qps: Double, burst: Int) {
        self.qps = max(qps, 0.001)
        self.burst = Double(max(burst, 1))
        self.tokens = Double(max(burst, 1))
    }

    func acquire() async throws {
        while true {
            let now = ContinuousClock.now
            let elapsed = now - last
            last = now
            tokens = min(burst, tokens + Double(elapsed.components.seconds) * qps + Double(elapsed.components.attoseconds) / 1e18 * qps)
            if tokens >= 1 {
                tokens -= 1
                return
            }
            try await Task.sleep(for: .seconds((1 - tokens) / qps))
        }
    }
}
