import ControllerRuntime
import Testing

@Suite struct WorkQueueTests {
    @Test func deduplicatesKeysWaitingInTheQueue() async {
        let queue = WorkQueue<String>()
        await queue.add("a")
        await queue.add("b")
        await queue.add("a")
        #expect(await queue.depth == 2)
        #expect(await queue.get() == "a")
        #expect(await queue.get() == "b")
    }

    @Test func aKeyBeingProcessedIsNotHandedOutTwiceAndRunsAgainAfter() async {
        let queue = WorkQueue<String>()
        await queue.add("a")
        let first = await queue.get()
        #expect(first == "a")
        // Re-added (twice) while a worker holds it: not available to another worker...
        await queue.add("a")
        await queue.add("a")
        #expect(await queue.depth == 0)
        // ...but queued once as soon as the first worker is done.
        await queue.done("a")
        #expect(await queue.depth == 1)
        #expect(await queue.get() == "a")
        await queue.done("a")
        #expect(await queue.depth == 0)
    }

    @Test func rateLimitedBackoffDoublesPerKeyAndForgetResets() async {
        let queue = WorkQueue<String>()
        let delays = [await queue.addRateLimited("a"), await queue.addRateLimited("a"), await queue.addRateLimited("a")]
        #expect(delays == [.milliseconds(5), .milliseconds(10), .milliseconds(20)])
        #expect(await queue.addRateLimited("b") == .milliseconds(5))
        await queue.forget("a")
        #expect(await queue.addRateLimited("a") == .milliseconds(5))
    }

    @Test func backoffIsCappedAt1000Seconds() async {
        let queue = WorkQueue<String>()
        var last: Duration = .zero
        for _ in 0..<40 { last = await queue.addRateLimited("a") }
        #expect(last == .seconds(1000))
        await queue.shutDown()
    }

    /// A key that failed all through an outage of the server runs again within the ceiling, not 1000 s later.
    @Test func aCeilingBoundsTheBackoffButNotTheCount() async {
        let queue = WorkQueue<String>()
        var delays: [Duration] = []
        for _ in 0..<20 { delays.append(await queue.addRateLimited("a", atMost: .seconds(5))) }
        #expect(delays.prefix(3) == [.milliseconds(5), .milliseconds(10), .milliseconds(20)])
        #expect(delays.last == .seconds(5))
        #expect(await queue.failureCount("a") == 20)
        // Without the ceiling the next step continues from the count (5 ms × 2²⁰, past the 1000 s cap).
        #expect(await queue.addRateLimited("a") == .seconds(1000))
        await queue.shutDown()
    }

    @Test func delayedAddArrivesAfterTheDelayAndTheEarliestWins() async throws {
        let queue = WorkQueue<String>()
        await queue.add("a", after: .seconds(60))
        await queue.add("a", after: .milliseconds(30))
        #expect(await queue.depth == 0)
        let start = ContinuousClock.now
        let key = await queue.get()
        #expect(key == "a")
        #expect(ContinuousClock.now - start >= .milliseconds(25))
    }

    @Test func shutDownReleasesWaitingWorkers() async {
        let queue = WorkQueue<String>()
        async let waiting = queue.get()
        try? await Task.sleep(for: .milliseconds(20))
        await queue.shutDown()
        #expect(await waiting == nil)
        await queue.add("late")
        #expect(await queue.get() == nil)
    }

    @Test func manyWorkersNeverShareAKey() async {
        let queue = WorkQueue<Int>()
        let tracker = InFlight()
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    while let key = await queue.get() {
                        await tracker.begin(key)
                        if worker % 2 == 0 { await Task.yield() }
                        await tracker.end(key)
                        await queue.done(key)
                    }
                }
            }
            for round in 0..<200 { await queue.add(round % 10) }
            while await queue.depth > 0 { await Task.yield() }
            try? await Task.sleep(for: .milliseconds(50))
            await queue.shutDown()
        }
        #expect(await tracker.overlaps == 0)
        #expect(await tracker.processed > 0)
    }
}

actor InFlight {
    var current: Set<Int> = []
    var overlaps = 0
    var processed = 0
    func begin(_ key: Int) {
        if !current.insert(key).inserted { overlaps += 1 }
    }
    func end(_ key: Int) {
        current.remove(key)
        processed += 1
    }
}

@Suite struct RetryOwnershipTests {
    /// A server's long Retry-After is waited in the queue (the key comes back later), never in a worker.
    @Test func aServerPauseIsWaitedInTheQueue() async {
        let queue = WorkQueue<String>()
        #expect(await queue.addRateLimited("a", atLeast: .seconds(30)) == .seconds(30))
        #expect(await queue.depth == 0, "not handed out before the pause")
        // Shorter than the backoff step: the backoff wins.
        #expect(await queue.addRateLimited("a", atLeast: .milliseconds(1)) == .milliseconds(10))
        await queue.shutDown()
    }
}
