/// What a controller needs of a ReplicaSet: metadata, how many pods it has, and the short annotations
/// of its pod template (a hash that tells which template runs). Everything else (the template itself,
/// long annotation values) is read past, not kept in the cache.
public struct ReplicaSetSummary: KubernetesObject, Hashable {
    public var metadata: ObjectMeta
    /// `spec.template.metadata.annotations` whose values are at most `maximumKeptValue` bytes.
    public var templateAnnotations: [String: String]
    public var replicas: Int

    /// Longer template annotation values (an agent policy, a serialized config) are not kept.
    public static let maximumKeptValue = 128

    private enum Keys: String, CodingKey { case metadata, spec, status, template, replicas, annotations }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Keys.self)
        metadata = try container.decodeIfPresent(ObjectMeta.self, forKey: .metadata) ?? ObjectMeta()
        metadata.managedFields = nil
        var annotations: [String: String] = [:]
        if let spec = try? container.nestedContainer(keyedBy: Keys.self, forKey: .spec),
            let template = try? spec.nestedContainer(keyedBy: Keys.self, forKey: .template),
            let templateMetadata = try? template.nestedContainer(keyedBy: Keys.self, forKey: .metadata),
            let all = try? templateMetadata.decodeIfPresent([String: String].self, forKey: .annotations)
        {
            annotations = all.filter { $0.value.utf8.count <= Self.maximumKeptValue }
        }
        templateAnnotations = annotations
        let status = try? container.nestedContainer(keyedBy: Keys.self, forKey: .status)
        replicas = (try? status?.decodeIfPresent(Int.self, forKey: .replicas)) ?? 0
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(metadata, forKey: .metadata)
        var status = container.nestedContainer(keyedBy: Keys.self, forKey: .status)
        try status.encode(replicas, forKey: .replicas)
    }
}
