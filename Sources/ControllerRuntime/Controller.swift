import KubernetesClient
import Logging
import Synchronization

/// What a reconcile asks for next.
public enum ReconcileResult: Sendable, Equatable {
    /// Converged; wait for the next change.
    case done
    /// Run again after this long (e.g. to drop an old hash once a rollout finished).
    case requeue(after: Duration)

    /// The earlier of two results (`done` is never earlier than a requeue).
    public func sooner(_ other: ReconcileResult) -> ReconcileResult {
        switch (self, other) {
        case (.done, _): other
        case (_, .done): self
        case (.requeue(let a), .requeue(let b)): .requeue(after: min(a, b))
        }
    }
}

/// Level-triggered reconcile of one key: re-read state, compute, apply the difference.
public protocol Reconciler: Sendable {
    func reconcile(_ key: ObjectKey) async throws -> ReconcileResult
}

/// An error that retrying will not fix (e.g. invalid input already reported in status).
public struct TerminalError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Hooks for the `controller_runtime_*` metrics.
public protocol ControllerObserver: Sendable {
    func reconciled(controller: String, result: String, duration: Duration)
    func activeWorkers(controller: String, count: Int)
}

/// Wires sources (reflectors whose changes map to keys) to a work queue and a pool of workers.
///
///     let controller = Controller(name: "confidentialworkload", reconciler: reconciler, concurrency: 4)
///     controller.watch(workloads) { change in [ObjectKey(change.object)] }
///     controller.watch(deployments, map: ownerKeys)
///     try await controller.run()
public final class Controller: Sendable {
    public struct Options: Sendable {
        public var concurrency = 1
        public var rateLimit = WorkQueue<ObjectKey>.RateLimit()
        public init(concurrency: Int = 1) { self.concurrency = max(1, concurrency) }
    }

    public let name: String
    public let queue: WorkQueue<ObjectKey>
    let reconciler: any Reconciler
    let options: Options
    let logger: Logger
    let observer: (any ControllerObserver)?
    private let sources = Mutex<[Source]>([])
    private let active = Mutex(0)

    struct Source: Sendable {
        var run: @Sendable (WorkQueue<ObjectKey>) async -> Void
        var hasSynced: @Sendable () -> Bool
    }

    public init(
        name: String, reconciler: any Reconciler, options: Options = Options(), logger: Logger,
        queueObserver: (any WorkQueueObserver)? = nil, observer: (any ControllerObserver)? = nil
    ) {
        self.name = name
        self.reconciler = reconciler
        self.options = options
        self.observer = observer
        var logger = logger
        logger[metadataKey: "controller"] = "\(name)"
        self.logger = logger
        self.queue = WorkQueue(rateLimit: options.rateLimit, observer: queueObserver)
    }

    /// Feeds the keys `map` returns for each change of `reflector`'s store into the queue.
    public func watch<Object>(_ reflector: Reflector<Object>, map: @escaping @Sendable (StoreChange<Object>) -> [ObjectKey]) {
        let source = Source(
            run: { queue in
                await reflector.run { change in
                    for key in map(change) { await queue.add(key) }
                }
            },
            hasSynced: { reflector.store.hasSynced })
        sources.withLock { $0.append(source) }
    }

    /// True once every source has listed once.
    public var hasSynced: Bool { sources.withLock { $0.allSatisfy { $0.hasSynced() } } }

    /// Runs sources and workers until the task is cancelled; then stops taking work and lets in-flight
    /// reconciles finish.
    public func run() async {
        let sources = self.sources.withLock { $0 }
        await withTaskCancellationHandler {
            await withTaskGroup(of: Void.self) { group in
                for source in sources {
                    group.addTask { await source.run(self.queue) }
                }
                group.addTask {
                    // Workers start only once every cache is complete: a reconcile must not mistake
                    // "not listed yet" for "does not exist" (that would rewrite everything on restart).
                    while !self.hasSynced {
                        if Task.isCancelled { return }
                        try? await Task.sleep(for: .milliseconds(10))
                    }
                    self.logger.info("caches synced, starting workers", metadata: ["workers": "\(self.options.concurrency)"])
                    // The workers run in a task of their own, outside this one's cancellation: a shutdown ends
                    // the queue, and a worker finishes the reconcile it is in (its writes) rather than
                    // abandoning a half-applied state; then it finds the queue ended.
                    let workers = Task {
                        await withTaskGroup(of: Void.self) { workers in
                            for _ in 0..<self.options.concurrency {
                                workers.addTask { await self.worker() }
                            }
                        }
                    }
                    await workers.value
                }
            }
        } onCancel: {
            Task { await self.queue.shutDown() }
        }
    }

    private func worker() async {
        while let key = await queue.get() {
            let count = active.withLock { $0 += 1; return $0 }
            observer?.activeWorkers(controller: name, count: count)
            await process(key)
            let remaining = active.withLock { $0 -= 1; return $0 }
            observer?.activeWorkers(controller: name, count: remaining)
            await queue.done(key)
        }
    }

    private func process(_ key: ObjectKey) async {
        var logger = self.logger
        logger[metadataKey: "workload"] = "\(key)"
        let start = ContinuousClock.now
        do {
            let result = try await reconciler.reconcile(key)
            let elapsed = ContinuousClock.now - start
            await queue.forget(key)
            switch result {
            case .done:
                observer?.reconciled(controller: name, result: "success", duration: elapsed)
            case .requeue(let delay):
                observer?.reconciled(controller: name, result: "requeue_after", duration: elapsed)
                await queue.add(key, after: delay)
            }
            logger.trace("reconciled", metadata: ["duration": "\(elapsed)"])
        } catch let error as TerminalError {
            observer?.reconciled(controller: name, result: "error", duration: ContinuousClock.now - start)
            logger.error("reconcile failed permanently", metadata: ["error": "\(error)"])
        } catch {
            observer?.reconciled(controller: name, result: "error", duration: ContinuousClock.now - start)
            // A conflict just means our view was stale: retry soon, it is not worth a warning.
            let delay: Duration
            if error.isKube(.conflict) {
                delay = .milliseconds(Int.random(in: 50...200))
                await queue.add(key, after: delay)
            } else {
                // The server asked for a pause (429 with Retry-After): the queue waits, not the worker.
                // A failure that is the server's passing state (restarting, overloaded, its admission not
                // yet knowing our kind) backs off to at most a few seconds, so a key that failed all
                // through an outage runs again soon after it, not up to 1000 s later.
                delay = await queue.addRateLimited(key, atLeast: (error as? KubeError)?.retryAfter,
                    atMost: error.isServerTransient ? options.rateLimit.transientMaximum : nil)
            }
            logger.log(level: error.isKube(.conflict) ? .debug : .warning, "reconcile failed, will retry", metadata: ["error": "\(error)", "retryIn": "\(delay)"])
        }
    }
}

extension Controller {
    /// Maps a child to the key of its controlling owner of the given kind.
    public static func controllerOwner<Object: KubernetesObject>(kind: String, apiVersion: String) -> @Sendable (StoreChange<Object>) -> [ObjectKey] {
        { change in
            let object = change.object
            guard let owner = object.metadata.ownerReferences?.first(where: { $0.controller == true && $0.kind == kind && $0.apiVersion == apiVersion })
            else { return [] }
            return [ObjectKey(namespace: object.metadata.namespace ?? "", name: owner.name)]
        }
    }
}
