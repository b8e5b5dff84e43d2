import Synchronization

/// One shared copy of the strings every cached object repeats: member names (`lastTransitionTime`,
/// `app.kubernetes.io/managed-by`) and the values of a few members whose values repeat across objects
/// (condition types, reasons and messages, kinds, images). A thousand cached workloads otherwise hold a
/// thousand heap copies of each; Swift keeps strings of up to 15 UTF-8 bytes inline, so only longer
/// ones are interned.
enum StringInterner {
    static let longestInterned = 256
    private static let table = Mutex(InternTable(capacity: 4096))

    /// Members whose values are worth sharing (their values repeat across objects of one kind).
    static let sharedValueMembers: Set<String> = [
        "apiVersion", "kind", "type", "status", "reason", "message", "image", "runtimeClassName", "apiGroup",
        "imagePullPolicy", "terminationMessagePath", "terminationMessagePolicy", "fieldsType", "manager", "operation",
        "mountPath", "serviceAccountName", "secretName", "path",
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
/// strings each. When the young one is full, the old one is dropped and the young one takes its place; a
/// string found in the old generation moves back to the young. So what objects keep repeating stays shared
/// for as long as cwo runs, while strings nothing asks for any more (the timestamps of an hour ago) age
/// out: a table that only ever filled would, after some hours of status updates, be full of those and
/// share nothing new.
struct InternTable: Sendable {
    let capacity: Int
    private(set) var young: Set<String> = []
    private(set) var old: Set<String> = []

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// The shared copy of `string` (this one, if the table holds none).
    mutating func intern(_ string: String) -> String {
        if let index = young.firstIndex(of: string) { return young[index] }
        let shared = old.remove(string) ?? string
        if young.count >= capacity {
            old = young
            young = Set(minimumCapacity: capacity)
        }
        young.insert(shared)
        return shared
    }
}
