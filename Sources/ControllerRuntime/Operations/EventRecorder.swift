#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import KubernetesClient
import Logging
import Synchronization

/// Records `events.k8s.io/v1` Events on objects, as `kubectl describe` shows them, off the reconcile
/// path: `record` never waits for the API server and never fails. A background writer sends what was
/// recorded; when it falls more than `bufferSize` events behind (a slow or refusing server), new events
/// are dropped and counted rather than queued without bound (client-go's broadcaster does the same).
///
/// The same event (object, type, reason, note) repeated within ten minutes is not created again: the
/// existing Event's `series` is updated instead, at most once a minute, so a loop can never flood the
/// API server with events.
public final class EventRecorder: Sendable {
    public enum EventType: String, Sendable { case normal = "Normal", warning = "Warning" }

    let controller: String
    let instance: String
    private let recent = Mutex<[String: Entry]>([:])
    private let pending: AsyncStream<Write>.Continuation
    private let writer: Task<Void, Never>
    private let droppedCount = Mutex(0)

    struct Entry {
        var name: String
        var namespace: String
        var count: Int
        var firstSeen: ContinuousClock.Instant
        var lastPatched: ContinuousClock.Instant
    }

    /// One request for the writer.
    enum Write: Sendable {
        case create(namespace: String, body: JSONValue, reason: String)
        case patch(namespace: String, name: String, count: Int, time: String, reason: String)
    }

    public init(client: KubeClient, controller: String, instance: String, logger: Logger, bufferSize: Int = 1024) {
        self.controller = controller
        self.instance = instance
        let (stream, continuation) = AsyncStream.makeStream(of: Write.self, bufferingPolicy: .bufferingOldest(max(1, bufferSize)))
        pending = continuation
        writer = Task {
            for await write in stream { await Self.send(write, client: client, logger: logger) }
        }
    }

    /// How many distinct recent events are remembered for aggregation, at most.
    static let remembered = 4096

    /// Distinct events remembered for aggregation now (at most `remembered`).
    public var rememberedCount: Int { recent.withLock { $0.count } }

    /// Events dropped because the writer was too far behind.
    public var dropped: Int { droppedCount.withLock { $0 } }

    /// Sends what was recorded, then stops taking events (graceful shutdown).
    public func shutdown() async {
        pending.finish()
        await writer.value
    }

    /// Returns at once: the event is aggregated here and written in the background.
    public func record(
        regarding object: ObjectMeta, apiVersion: String, kind: String, type: EventType, reason: String, action: String, note: String
    ) {
        let namespace = object.namespace ?? "default"
        let key = "\(object.uid ?? "")|\(type.rawValue)|\(reason)|\(note)"
        let now = ContinuousClock.now
        enum Step { case create(String), patch(Entry), skip }
        let step: Step = recent.withLock { entries in
            // Forget what is old, so the map stays small; a burst of more distinct events than that within
            // ten minutes (thousands of new workloads, each with its own warning) starts the map afresh
            // rather than growing it: a repeat then creates an Event again instead of counting on the old.
            if entries.count >= Self.remembered {
                entries = entries.filter { now - $0.value.firstSeen < .seconds(600) }
                if entries.count >= Self.remembered { entries = [:] }
            }
            if var entry = entries[key], now - entry.firstSeen < .seconds(600) {
                entry.count += 1
                let due = now - entry.lastPatched >= .seconds(60)
                if due { entry.lastPatched = now }
                entries[key] = entry
                return due ? .patch(entry) : .skip
            }
            let name = "\(object.name ?? "object").\(String(UInt64.random(in: 0...UInt64.max), radix: 16))"
            entries[key] = Entry(name: name, namespace: namespace, count: 1, firstSeen: now, lastPatched: now)
            return .create(name)
        }
        let time = LeaderElector.microTime()
        let write: Write
        switch step {
        case .skip:
            return
        case .create(let name):
            write = .create(namespace: namespace, body: [
                "apiVersion": "events.k8s.io/v1", "kind": "Event",
                "metadata": ["name": .string(name), "namespace": .string(namespace)],
                "eventTime": .string(time), "reportingController": .string(controller), "reportingInstance": .string(instance),
                "action": .string(action), "reason": .string(reason), "note": .string(String(note.prefix(1024))), "type": .string(type.rawValue),
                "regarding": [
                    "apiVersion": .string(apiVersion), "kind": .string(kind), "name": .string(object.name ?? ""),
                    "namespace": .string(namespace), "uid": .string(object.uid ?? ""), "resourceVersion": .string(object.resourceVersion ?? ""),
                ],
            ], reason: reason)
        case .patch(let entry):
            write = .patch(namespace: entry.namespace, name: entry.name, count: entry.count, time: time, reason: reason)
        }
        if case .dropped = pending.yield(write) { droppedCount.withLock { $0 += 1 } }
    }

    /// Writes one event; a failure is logged and the writer goes on.
    static func send(_ write: Write, client: KubeClient, logger: Logger) async {
        do {
            switch write {
            case .create(let namespace, let body, _):
                let _: Discarded = try await client.create(.events, namespace: namespace, try UntypedObject(body), as: Discarded.self)
            case .patch(let namespace, let name, let count, let time, _):
                let _: Discarded = try await client.patch(
                    .events, namespace: namespace, name: name, .merge(["series": ["count": .number(Double(count)), "lastObservedTime": .string(time)]]))
            }
        } catch {
            let reason = switch write {
            case .create(_, _, let reason), .patch(_, _, _, _, let reason): reason
            }
            logger.warning("could not record event", metadata: ["reason": "\(reason)", "error": "\(error)"])
        }
    }
}
