import Synchronization

/// One shared copy of the strings every cached object repeats: member names (`lastTransitionTime`,
/// `app.kubernetes.io/managed-by`) and the values of a few members whose values repeat across objects
/// (condition types, reasons and messages, kinds, images, namespaces). A thousand cached workloads otherwise hold a
/// thousand heap copies of each; Swift keeps strings of up to 15 UTF-8 bytes inline, so only longer
/// ones are interned.
enum StringInterner {
    /// Condition messages run to a few hundred bytes, and a workload's `Ready` repeats the message of the
    /// condition that is not met; longer values are not worth a lookup.
    static let longestInterned = 1024
    private static let table = Mutex(InternTable(capacity: 4096, bytes: 512 * 1024))

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

    static func intern(_ string: String) -> String {
        let length = string.utf8.count
        guard length > 15, length <= longestInterned else { return string }
        return table.withLock { $0.intern(string) }
    }
}

/// A bounded, generational set of shared strings: a young and an old generation of at most `capacity`
/// strings (and `bytes` of UTF-8) each. When the young one is full, the old one is dropped and the young one takes its place; a
/// string found in the old generation moves back to the young. So what objects keep repeating stays shared
/// for as long as cwo runs, while strings nothing asks for any more (the timestamps of an hour ago) age
/// out: a table that only ever filled would, after some hours of status updates, be full of those and
/// share nothing new.
struct InternTable: Sendable {
    let capacity: Int
    let bytes: Int
    private(set) var young: Set<String> = []
    private(set) var old: Set<String> = []
    private var youngBytes = 0

    init(capacity: Int, bytes: Int = .max) {
        self.capacity = max(1, capacity)
        self.bytes = bytes
    }

    /// The shared copy of `string` (this one, if the table holds none).
    mutating func intern(_ string: String) -> String {
        if let index = young.firstIndex(of: string) { return young[index] }
        let shared = old.remove(string) ?? string
        let size = shared.utf8.count
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
