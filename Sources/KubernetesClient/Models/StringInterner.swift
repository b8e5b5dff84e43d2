import Synchronization

/// One shared copy of the strings every cached object repeats: member names (`lastTransitionTime`,
/// `app.kubernetes.io/managed-by`) and the values of a few members whose values repeat across objects
/// (condition types, reasons and messages, kinds, images). A thousand cached workloads otherwise hold a
/// thousand heap copies of each; Swift keeps strings of up to 15 UTF-8 bytes inline, so only longer
/// ones are interned.
///
/// Bounded: once `capacity` strings are kept, new ones are returned as they are, so objects full of
/// unique names cannot grow the table without end.
enum StringInterner {
    static let capacity = 8192
    static let longestInterned = 256
    private static let table = Mutex<Set<String>>([])

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
        return table.withLock { table in
            if let shared = table.firstIndex(of: string).map({ table[$0] }) { return shared }
            if table.count < capacity { table.insert(string) }
            return string
        }
    }
}
