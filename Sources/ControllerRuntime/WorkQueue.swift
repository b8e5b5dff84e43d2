/// A work queue with controller-runtime's guarantees: one entry per key, never two workers on one key,
/// a key re-added while it is processed runs again once after, per-key exponential backoff on failure,
/// and delayed adds for requeue-after.
public actor WorkQueue<Key: Hashable & Sendable> {
    public struct RateLimit: Sendable {
        /// controller-runtime's per-item limiter: 5 ms doubling to 1000 s.
        public var base: Duration = .milliseconds(5)
        public var maximum: Duration = .seconds(1000)
        /// The ceiling for failures that pass by themselves (the API server restarting or overloaded).
        public var transientMaximum: Duration = .seconds(5)
        public init() {}
    }

    private var ready: [Key] = []
    private var head = 0
    private var dirty: Set<Key> = []
    private var processing: Set<Key> = []
    private var waiters: [CheckedContinuation<Key?, Never>] = []
    private var failures: [Key: Int] = [:]
    private var delayed: [Key: (due: ContinuousClock.Instant, task: Task<Void, Never>)] = [:]
    private var addedAt: [Key: ContinuousClock.Instant] = [:]
    private var shuttingDown = false
    private let rateLimit: RateLimit
    private let observer: (any WorkQueueObserver)?

    public init(rateLimit: RateLimit = RateLimit(), observer: (any WorkQueueObserver)? = nil) {
        self.rateLimit = rateLimit
        self.observer = observer
    }

    public var depth: Int { ready.count - head }
    public var isShuttingDown: Bool { shuttingDown }

    public func add(_ key: Key) {
        guard !shuttingDown else { return }
        observer?.added()
        guard dirty.insert(key).inserted else { return }
        addedAt[key] = .now
        // A key being processed is queued again when its worker is done, never handed to a second worker.
        if processing.contains(key) { return }
        enqueue(key)
    }

    private func enqueue(_ key: Key) {
        if !waiters.isEmpty {
            let waiter = waiters.removeFirst()
            take(key)
            waiter.resume(returning: key)
        } else {
            ready.append(key)
            observer?.depthChanged(depth)
        }
    }

    private func take(_ key: Key) {
        dirty.remove(key)
        processing.insert(key)
        if let added = addedAt.removeValue(forKey: key) { observer?.waited(ContinuousClock.now - added) }
    }

    /// The next key to work on, or nil once the queue shuts down. Call `done(_:)` after.
    public func get() async -> Key? {
        if head < ready.count {
            let key = ready[head]
            head += 1
            if head > 1024 && head * 2 > ready.count {
                ready.removeFirst(head)
                head = 0
            }
            observer?.depthChanged(depth)
            take(key)
            return key
        }
        if shuttingDown { return nil }
        return await withCheckedContinuation { waiters.append($0) }
    }

    public func done(_ key: Key) {
        processing.remove(key)
        if dirty.contains(key) && !shuttingDown { enqueue(key) }
    }

    /// Adds the key after `delay` (requeue-after). An earlier pending add of the same key wins.
    public func add(_ key: Key, after delay: Duration) {
        guard !shuttingDown else { return }
        guard delay > .zero else { return add(key) }
        let due = ContinuousClock.now + delay
        if let pending = delayed[key], pending.due <= due { return }
        delayed[key]?.task.cancel()
        let task = Task { [weak self] in
            try? await Task.sleep(until: due, clock: .continuous)
            guard !Task.isCancelled else { return }
            await self?.fireDelayed(key, due: due)
        }
        delayed[key] = (due, task)
    }

    private func fireDelayed(_ key: Key, due: ContinuousClock.Instant) {
        guard delayed[key]?.due == due else { return }
        delayed[key] = nil
        add(key)
    }

    /// Re-adds after the key's next backoff step, no sooner than `minimum` and no later than `maximum`
    /// (for failures that pass by themselves, which a long backoff would only outlast); returns the delay.
    @discardableResult
    public func addRateLimited(_ key: Key, atLeast minimum: Duration? = nil, atMost maximum: Duration? = nil) -> Duration {
        let count = failures[key, default: 0]
        failures[key] = count + 1
        observer?.retried()
        let step = min(rateLimit.base * Int(1 << min(count, 40)), rateLimit.maximum, maximum ?? rateLimit.maximum)
        let delay = max(step, minimum ?? .zero)
        add(key, after: delay)
        return delay
    }

    /// Clears the key's backoff (after a success).
    public func forget(_ key: Key) {
        failures[key] = nil
    }

    public func failureCount(_ key: Key) -> Int { failures[key, default: 0] }

    /// Stops handing out work: waiting workers get nil; keys in flight may still call `done`.
    public func shutDown() {
        shuttingDown = true
        for (_, pending) in delayed { pending.task.cancel() }
        delayed.removeAll()
        let waiting = waiters
        waiters.removeAll()
        for waiter in waiting { waiter.resume(returning: nil) }
    }
}

/// Hooks for the `workqueue_*` metrics.
public protocol WorkQueueObserver: Sendable {
    func added()
    func depthChanged(_ depth: Int)
    func waited(_ duration: Duration)
    func retried()
}
