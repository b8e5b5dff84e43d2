import ControllerRuntime
import OCIRegistry

/// Image facts for the reconcile, looked up off its workers.
///
/// `facts(for:waiter:)` answers at once with what is known and queues what is not; `run()` resolves the
/// queue with at most `concurrency` registry lookups at a time and tells (`notify`) every workload that
/// waits for an answer, so it is reconciled again. A reference is resolved once however many workloads
/// name it with the same credentials (anonymous ones included): a workload's pull secret never serves
/// another workload's lookup. An answer by tag is kept for `ttl` (then looked up again, the old one served meanwhile); an
/// answer by digest never changes, so it is kept for good; a failure is retried after `retryFailures`,
/// and the facts of an earlier success stay (a Deployment keeps the images it runs). A registry that is
/// down delays only the workloads that use it.
public actor ImageResolver {
    public struct Outcome: Sendable, Hashable {
        /// The facts of the last successful lookup, kept through later failures.
        public var facts: ImageFacts?
        /// Why the last lookup failed, when it did.
        public var failure: ImageProblem?
    }

    /// One reference, the credentials its workload pulls it with (nil: anonymous), and whether its layers'
    /// dm-verity root hashes are needed (a node that pulls the layers itself: AKS).
    public struct Request: Sendable, Hashable {
        public var reference: String
        public var credentials: RegistryClient.Credentials?
        public var tarfsLayers: Bool

        public init(_ reference: String, credentials: RegistryClient.Credentials? = nil, tarfsLayers: Bool = false) {
            self.reference = reference
            self.credentials = credentials
            self.tarfsLayers = tarfsLayers
        }
    }

    public typealias Lookup = @Sendable (Request) async throws(RegistryError) -> ImageFacts

    struct Entry {
        var outcome: Outcome
        var at: ContinuousClock.Instant
    }

    private let lookup: Lookup
    /// How long an answer by tag is used before the tag is looked up again.
    public nonisolated let ttl: Duration
    private let retryFailures: Duration
    private let concurrency: Int
    private var notify: @Sendable (ObjectKey) async -> Void = { _ in }
    private let pending: AsyncStream<Request>
    private let enqueue: AsyncStream<Request>.Continuation
    private var entries: [Request: Entry] = [:]
    private var queued: Set<Request> = []
    private var waiters: [Request: Set<ObjectKey>] = [:]
    /// Registry lookups made (each one resolution of one reference).
    public private(set) var lookups = 0

    /// Whether workloads whose node pulls the layers (AKS) ask for the layers' root hashes.
    public nonisolated let hashLayersForHostPull: Bool

    public init(lookup: @escaping Lookup, ttl: Duration = .seconds(600), retryFailures: Duration = .seconds(30), concurrency: Int = 4,
                hashLayersForHostPull: Bool = false) {
        self.lookup = lookup
        self.hashLayersForHostPull = hashLayersForHostPull
        self.ttl = ttl
        self.retryFailures = retryFailures
        self.concurrency = max(1, concurrency)
        (pending, enqueue) = AsyncStream.makeStream(of: Request.self)
    }

    /// Who is told when a workload's answer arrives (the controller's queue).
    public func notify(_ handler: @escaping @Sendable (ObjectKey) async -> Void) {
        notify = handler
    }

    /// The outcomes known for `requests`, by reference (those never looked up are absent); each unknown
    /// or stale one is queued, and `waiter` is told when its answer arrives.
    public func facts(for requests: [Request], waiter: ObjectKey) -> [String: Outcome] {
        var known: [String: Outcome] = [:]
        let now = ContinuousClock.now
        for request in Set(requests) {
            if let entry = entries[request] {
                known[request.reference] = entry.outcome
                if !isStale(request.reference, entry, now: now) { continue }
            }
            waiters[request, default: []].insert(waiter)
            if queued.insert(request).inserted { enqueue.yield(request) }
        }
        return known
    }

    /// `facts(for:waiter:)` for anonymous lookups.
    public func facts(for references: [String], waiter: ObjectKey) -> [String: Outcome] {
        facts(for: references.map { Request($0) }, waiter: waiter)
    }

    private func isStale(_ reference: String, _ entry: Entry, now: ContinuousClock.Instant) -> Bool {
        if entry.outcome.failure != nil { return now - entry.at >= retryFailures }
        return !reference.contains("@sha256:") && now - entry.at >= ttl
    }

    /// What the cache holds: its entries and, roughly, the bytes of their facts (strings' UTF-8).
    public func footprint() -> (entries: Int, bytes: Int) {
        let bytes = entries.reduce(0) { total, item in
            let facts = item.value.outcome.facts
            let strings = [item.key.reference, facts?.digest ?? "", facts?.manifestDigest ?? "", facts?.user ?? "", facts?.workingDir ?? ""]
                + (facts?.entrypoint ?? []) + (facts?.cmd ?? []) + (facts?.env ?? []) + (facts?.layers ?? [])
            return total + strings.reduce(0) { $0 + $1.utf8.count }
        }
        return (entries.count, bytes)
    }

    /// Resolves queued references until cancelled, `concurrency` at a time.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            var running = 0
            for await request in pending {
                if running == concurrency {
                    await group.next()
                    running -= 1
                }
                group.addTask { await self.resolve(request) }
                running += 1
            }
        }
    }

    /// Stops `run()` once the lookups under way are done.
    public nonisolated func finish() {
        enqueue.finish()
    }

    private func resolve(_ request: Request) async {
        lookups += 1
        let before = entries[request]?.outcome
        var outcome = before ?? Outcome()
        do {
            outcome = Outcome(facts: try await lookup(request))
        } catch {
            outcome.failure = ImageProblem(reason: error.reason, message: error.description)
        }
        entries[request] = Entry(outcome: outcome, at: .now)
        queued.remove(request)
        let (count, bytes) = footprint()
        WorkloadMetrics.imageLookup(cacheEntries: count, cacheBytes: bytes)
        let told = waiters.removeValue(forKey: request) ?? []
        // An answer that did not change (a registry still down, a tag still on its digest) changes no
        // workload: reconciling all its waiters again would only cost CPU.
        guard outcome != before else { return }
        for key in told.sorted() { await notify(key) }
    }
}
