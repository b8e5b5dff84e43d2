import KubernetesClient

/// What a reconcile is about: namespace and name, never the object itself (level-triggered).
public struct ObjectKey: Hashable, Sendable, CustomStringConvertible, Comparable {
    public var namespace: String
    public var name: String

    public init(namespace: String, name: String) {
        self.namespace = namespace
        self.name = name
    }

    public init(_ object: some KubernetesObject) {
        self.init(namespace: object.metadata.namespace ?? "", name: object.metadata.name ?? "")
    }

    public var description: String { namespace.isEmpty ? name : "\(namespace)/\(name)" }

    public static func < (lhs: ObjectKey, rhs: ObjectKey) -> Bool {
        (lhs.namespace, lhs.name) < (rhs.namespace, rhs.name)
    }
}
