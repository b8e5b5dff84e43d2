import Foundation
import KubernetesClient
import Logging
import Synchronization

/// Records `events.k8s.io/v1` Events on objects, as `kubectl describe` shows them.
///
/// The same event (object, type, reason, note) repeated within ten minutes is not created again: the
/// existing Event's `series` is updated instead, at most once a minute, so a loop can never flood the
/// API server with events.
public final class EventRecorder: Sendable {
    public enum EventType: String, Sendable { case normal = "Normal", warning = "Warning" }

    let client: KubeClient
    let controller: String
    let instance: String
    let logger: Logger
    private let recent = Mutex<[String: Entry]>([:])

    struct Entry {
        var name: String
        var namespace: String
        var count: Int
        var firstSeen: ContinuousClock.Instant
        var lastPatched: ContinuousClock.Instant
    }

    public init(client: KubeClient, controller: String, instance: String, logger: Logger) {
        self.client = client
        self.controller = controller
        self.instance = instance
        self.logger = logger
    }

    /// Never throws: an event that cannot be written is logged, and the reconcile goes on.
    public func record(
        regarding object: ObjectMeta, apiVersion: String, kind: String, type: EventType, reason: String, action: String, note: String
    ) async {
        let namespace = object.namespace ?? "default"
        let key = "\(object.uid ?? "")|\(type.rawValue)|\(reason)|\(note)"
        let now = ContinuousClock.now
        enum Step { case create(String), patch(Entry), skip }
        let step: Step = recent.withLock { entries in
            // Forget what is old, so the map stays small.
            if entries.count > 4096 { entries = entries.filter { now - $0.value.firstSeen < .seconds(600) } }
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
        do {
            switch step {
            case .skip:
                return
            case .create(let name):
                let body: JSONValue = [
                    "apiVersion": "events.k8s.io/v1", "kind": "Event",
                    "metadata": ["name": .string(name), "namespace": .string(namespace)],
                    "eventTime": .string(time), "reportingController": .string(controller), "reportingInstance": .string(instance),
                    "action": .string(action), "reason": .string(reason), "note": .string(String(note.prefix(1024))), "type": .string(type.rawValue),
                    "regarding": [
                        "apiVersion": .string(apiVersion), "kind": .string(kind), "name": .string(object.name ?? ""),
                        "namespace": .string(namespace), "uid": .string(object.uid ?? ""), "resourceVersion": .string(object.resourceVersion ?? ""),
                    ],
                ]
                let _: Discarded = try await client.create(.events, namespace: namespace, try UntypedObject(body), as: Discarded.self)
            case .patch(let entry):
                let _: Discarded = try await client.patch(
                    .events, namespace: entry.namespace, name: entry.name, .merge(["series": ["count": .number(Double(entry.count)), "lastObservedTime": .string(time)]]))
            }
        } catch {
            logger.warning("could not record event", metadata: ["reason": "\(reason)", "error": "\(error)"])
        }
    }
}
