import KubernetesClient
import Logging
import Synchronization

/// A change the reflector applied to its store.
public enum StoreChange<Object: KubernetesObject>: Sendable {
    case added(Object)
    case updated(old: Object, new: Object)
    case deleted(Object)

    public var object: Object {
        switch self {
        case .added(let object), .deleted(let object), .updated(_, let object): object
        }
    }

    /// False for an update that changed neither the generation (spec) nor the metadata a controller acts
    /// on (deletion, finalizers, labels, annotations, owners): a status write, typically the controller's
    /// own, which needs no reconcile. controller-runtime's GenerationChangedPredicate, plus metadata.
    public var changesSpecOrMetadata: Bool {
        guard case .updated(let old, let new) = self else { return true }
        let before = old.metadata
        let after = new.metadata
        return before.generation != after.generation || before.deletionTimestamp != after.deletionTimestamp
            || before.finalizers != after.finalizers || before.labels != after.labels || before.annotations != after.annotations
            || before.ownerReferences != after.ownerReferences || before.uid != after.uid
    }
}

/// Keeps a `Store` equal to the server's view of one kind: list, then watch from the list's
/// resourceVersion (with bookmarks), resume from the last seen version after a disconnect, relist
/// on 410 Gone, back off with jitter on errors, and treat a silent stream as dead.
public final class Reflector<Object: KubernetesObject>: Sendable {
    public struct Options: Sendable {
        public var namespace: String?
        public var labelSelector: String?
        public var fieldSelector: String?
        public var pageSize = 500
        /// The server ends each watch after a random 5–10 min (as client-go); we then resume.
        public var watchTimeout: ClosedRange<Int> = 300...600
        /// No byte for this long beyond the watch timeout means the stream is dead.
        public var idleGrace: Duration = .seconds(30)
        /// Explicit idle limit (tests); overrides watch timeout + grace.
        public var idleTimeout: Duration?
        /// 0.8 s doubling (kube-rs's start), capped at 5 s rather than 30 s: one operator's few watches are
        /// no herd, and after an API server restart cwo should be back within seconds. Reset after 2 quiet minutes.
        public var initialBackoff: Duration = .milliseconds(800)
        public var maximumBackoff: Duration = .seconds(5)
        public var backoffReset: Duration = .seconds(120)
        /// While the server cannot be reached or says it is starting (503), look again within this
        /// (jittered to its upper half) instead of backing off: such an answer costs the server nothing,
        /// and the escalated wait was most of the time cwo needed to come back after a restart.
        public var unavailableRetry: Duration = .seconds(1)
        /// The most of a server's Retry-After the reflector honours.
        public var maximumRetryAfter: Duration = .seconds(30)

        public init(namespace: String? = nil, labelSelector: String? = nil, fieldSelector: String? = nil) {
            self.namespace = namespace
            self.labelSelector = labelSelector
            self.fieldSelector = fieldSelector
        }
    }

    public let resource: Resource
    public let store: Store<Object>
    public let options: Options
    private let client: KubeClient
    private let logger: Logger
    private let counters = Mutex(Counters())

    struct Counters {
        var lists = 0
        var watches = 0
        var lastResourceVersion: String?
    }

    /// How many times the reflector listed and opened a watch (tests and metrics).
    public var listCount: Int { counters.withLock { $0.lists } }
    public var watchCount: Int { counters.withLock { $0.watches } }

    public init(client: KubeClient, resource: Resource, options: Options = Options(), store: Store<Object> = Store(), logger: Logger) {
        self.client = client
        self.resource = resource
        self.options = options
        self.store = store
        var logger = logger
        logger[metadataKey: "resource"] = "\(resource)"
        self.logger = logger
    }

    /// Runs until cancelled, calling `onChange` for every change applied to the store (in order, never concurrently).
    public func run(onChange: @escaping @Sendable (StoreChange<Object>) async -> Void) async {
        var resourceVersion: String?
        var failures = 0
        var lastFailure = ContinuousClock.now
        while !Task.isCancelled {
            do {
                if resourceVersion == nil {
                    resourceVersion = try await relist(onChange: onChange)
                }
                resourceVersion = try await watch(from: resourceVersion ?? "", onChange: onChange)
                failures = 0
            } catch is CancellationError {
                return
            } catch let error as KubeError where error.reason == .gone {
                // Our version was compacted away: only a fresh list is complete.
                logger.info("watch expired, relisting", metadata: ["error": "\(error.message)"])
                resourceVersion = nil
            } catch {
                if Task.isCancelled { return }
                if ContinuousClock.now - lastFailure > options.backoffReset { failures = 0 }
                failures += 1
                lastFailure = .now
                let delay = Self.retryDelay(after: error, failures: failures, options: options)
                // Once per outage, then every 30th try: a long outage must not flood the log.
                logger.log(
                    level: failures == 1 || failures % 30 == 0 ? .warning : .debug, "list/watch failed, retrying",
                    metadata: ["error": "\(error)", "retryIn": "\(delay)", "failures": "\(failures)"])
                try? await Task.sleep(for: delay)
            }
        }
    }

    /// A short look again while the server is unreachable or starting; the server's Retry-After when it
    /// throttles (429); otherwise exponential backoff with jitter.
    ///
    /// A starting kube-apiserver answers 503 with `Retry-After: 10` until it is ready, often well under a
    /// second later; honouring that would keep every watch away for 10 s after the server is back.
    static func retryDelay(after error: any Error, failures: Int, options: Options) -> Duration {
        let unreachable = if case .transport = error as? KubeClientError { true } else { false }
        if error.isKube(.tooManyRequests), let retryAfter = (error as? KubeError)?.retryAfter { return min(retryAfter, options.maximumRetryAfter) }
        if unreachable || error.isKube(.serviceUnavailable) {
            return Backoff.jittered(base: options.unavailableRetry, attempt: 1, cap: options.unavailableRetry)
        }
        return Backoff.jittered(base: options.initialBackoff, attempt: failures, cap: options.maximumBackoff)
    }

    private func relist(onChange: @escaping @Sendable (StoreChange<Object>) async -> Void) async throws -> String {
        var listOptions = ListOptions(labelSelector: options.labelSelector, fieldSelector: options.fieldSelector)
        // The cache never reads managedFields; often the largest part of an object.
        listOptions.dropManagedFields = true
        let list: ObjectList<Object> = try await client.listAll(resource, namespace: options.namespace, options: listOptions, pageSize: options.pageSize)
        counters.withLock { $0.lists += 1 }
        let (old, stored) = store.replace(with: list.items)
        // Tell the handler what changed across the gap, so nothing that happened while we were away is missed.
        for object in stored {
            let key = ObjectKey(object)
            if let previous = old[key] {
                if previous.metadata.resourceVersion != object.metadata.resourceVersion {
                    await onChange(.updated(old: previous, new: object))
                }
            } else {
                await onChange(.added(object))
            }
        }
        let current = Set(stored.map(ObjectKey.init))
        for (key, object) in old where !current.contains(key) {
            await onChange(.deleted(object))
        }
        logger.debug("listed", metadata: ["count": "\(list.items.count)", "resourceVersion": "\(list.metadata.resourceVersion ?? "")"])
        return list.metadata.resourceVersion ?? ""
    }

    /// Watches until the stream ends; returns the last resourceVersion seen, to resume from.
    private func watch(from resourceVersion: String, onChange: @escaping @Sendable (StoreChange<Object>) async -> Void) async throws -> String {
        let timeout = Int.random(in: options.watchTimeout)
        let idleLimit = options.idleTimeout ?? (.seconds(timeout) + options.idleGrace)
        let watchOptions = {
            var watchOptions = WatchOptions(
                labelSelector: options.labelSelector, fieldSelector: options.fieldSelector, resourceVersion: resourceVersion,
                allowWatchBookmarks: true, timeoutSeconds: timeout)
            watchOptions.dropManagedFields = true
            return watchOptions
        }()
        counters.withLock { $0.watches += 1 }
        let progress = WatchProgress(resourceVersion: resourceVersion)

        return try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                let stream: WatchStream<Object> = try await self.client.watch(self.resource, namespace: self.options.namespace, options: watchOptions)
                for try await event in stream {
                    progress.touch()
                    switch event {
                    case .bookmark(let version):
                        if !version.isEmpty { progress.seen(version) }
                    case .added(let object), .modified(let object):
                        progress.seen(object.metadata.resourceVersion)
                        let (old, stored) = self.store.upsert(object)
                        await onChange(old.map { .updated(old: $0, new: stored) } ?? .added(stored))
                    case .deleted(let object):
                        progress.seen(object.metadata.resourceVersion)
                        self.store.remove(ObjectKey(object))
                        await onChange(.deleted(object))
                    }
                }
                return true
            }
            // The watchdog: a stream that says nothing for longer than the server should be silent is dead.
            group.addTask {
                while true {
                    try await Task.sleep(for: .seconds(1) < idleLimit ? .seconds(1) : idleLimit)
                    let idle = ContinuousClock.now - progress.lastActivity
                    if idle > idleLimit { return false }
                }
            }
            let streamEnded = try await group.next() ?? true
            group.cancelAll()
            if !streamEnded {
                self.logger.warning("watch stream silent, restarting", metadata: ["idleLimit": "\(idleLimit)"])
            }
            return progress.resourceVersion
        }
    }
}

/// What a running watch has seen: when it last heard anything, and the newest resourceVersion.
private final class WatchProgress: Sendable {
    private let state: Mutex<(activity: ContinuousClock.Instant, version: String)>

    init(resourceVersion: String) {
        state = Mutex((ContinuousClock.now, resourceVersion))
    }

    func touch() { state.withLock { $0.activity = .now } }
    func seen(_ version: String?) {
        guard let version, !version.isEmpty else { return }
        state.withLock { $0.version = version }
    }
    var lastActivity: ContinuousClock.Instant { state.withLock { $0.activity } }
    var resourceVersion: String { state.withLock { $0.version } }
}
