import Synchronization

/// One shared copy of the strings every cached object repeats: member names (`lastTransitionTime`,
/// `app.kubernetes.io/managed-by`) and the values of a few members whose values repeat across objects
/// (condition types, reasons and messages, kinds, images, namespaces). A thousand cached workloads otherwise hold a
/// thousand heap copies of each; Swift keeps strings of up to 15 UTF-8 bytes inline, so only longer
/// ones are interned.
public enum StringInterner {
    /// Condition messages run to a few hundred bytes, and a workload's `Ready` repeats the message of the
    /// condition that is not met; longer values are not worth a lookup.
    static let longestInterned = 1024
    private static let table = Mutex(InternTable<String>(capacity: 4096, bytes: 512 * 1024))

    /// Members whose values are worth sharing (their values repeat across objects of one kind).
    static let sharedValueMembers: Set<String> = [
        "apiVersion", "kind", "type", "status", "reason", "message", "image", "runtimeClassName", "apiGroup",
        "imagePullPolicy", "terminationMessagePath", "terminationMessagePolicy", "fieldsType", "manager", "operation",
        "mountPath", "serviceAccountName", "secretName", "path",
        // Every object of a namespace names it (a workload and its Deployment, a Deployment's owner).
        "namespace",
        // Timestamps: objects written in one burst share their second.
        "lastTransitionTime", "lastUpdateTime", "creationTimestamp",
    ]

    public static func intern(_ string: String) -> String {
        let length = string.utf8.count
        guard length > 15, length <= longestInterned else { return string }
        return table.withLock { $0.intern(string, bytes: length) }
    }
}

/// One shared copy of the conditions cached objects repeat: workloads of one shape converged in one
/// burst carry the same `PolicyReady` (type, reason, message, second of transition), and Deployments the
/// same `Available`, 80-100 bytes each otherwise. Aged out like strings (see `InternTable`), so the tables
/// hold on to few conditions nothing uses any more.
enum ConditionInterner {
    private static let conditions = Mutex(InternTable<Indirect<Condition.Values>>(capacity: 4096, bytes: 512 * 1024))
    private static let deploymentConditions = Mutex(InternTable<Indirect<DeploymentCondition.Values>>(capacity: 4096, bytes: 512 * 1024))

    static func intern(_ fields: Indirect<Condition.Values>) -> Indirect<Condition.Values> {
        let values = fields.value
        return intern(fields, in: conditions, bytes: [values.type, values.lastTransitionTime, values.reason, values.message])
    }

    static func intern(_ fields: Indirect<DeploymentCondition.Values>) -> Indirect<DeploymentCondition.Values> {
        let values = fields.value
        return intern(fields, in: deploymentConditions, bytes: [values.type, values.reason, values.message, values.lastUpdateTime, values.lastTransitionTime])
    }

    /// `texts`: what the condition holds, counted against the table's bytes.
    private static func intern<Value>(_ fields: Indirect<Value>, in table: borrowing Mutex<InternTable<Indirect<Value>>>, bytes texts: [String?]) -> Indirect<Value> {
        let bytes = texts.reduce(0) { $0 + ($1?.utf8.count ?? 0) }
        return table.withLock { $0.intern(fields, bytes: bytes) }
    }
}

/// A bounded, generational set of shared values (strings, conditions): a young and an old generation of at
/// most `capacity` values (and `bytes` of their text) each. When the young one is full, the old one is
/// dropped and the young one takes its place; a value found in the old generation moves back to the young.
/// So what objects keep repeating stays shared for as long as cwo runs, while values nothing asks for any
/// more (the timestamps of an hour ago) age out: a table that only ever filled would, after some hours of
/// status updates, be full of those and share nothing new.
struct InternTable<Element: Hashable & Sendable>: Sendable {
    let capacity: Int
    let bytes: Int
    private(set) var young: Set<Element> = []
    private(set) var old: Set<Element> = []
    private var youngBytes = 0

    init(capacity: Int, bytes: Int = .max) {
        self.capacity = max(1, capacity)
        self.bytes = bytes
    }

    /// The shared copy of `element` (this one, if the table holds none); `size` counts against `bytes`.
    mutating func intern(_ element: Element, bytes size: Int) -> Element {
        if let index = young.firstIndex(of: element) { return young[index] }
        let shared = old.remove(element) ?? element
        if young.count >= capacity || youngBytes + size > bytes {
            old = young
            young = Set(minimumCapacity: min(capacity, young.count))
            youngBytes = 0
        }
        young.insert(shared)
        youngBytes += size
        return shared
    }
}

extension InternTable<String> {
    /// The shared copy of `string`, its UTF-8 counted against `bytes`.
    mutating func intern(_ string: String) -> String { intern(string, bytes: string.utf8.count) }
}
