/// What a controller needs of a ReplicaSet: metadata, how many pods it has, and the short annotations
/// of its pod template (a hash that tells which template runs). Everything else (the template itself,
/// long annotation values) is read past, not kept in the cache.
///
/// Read as protobuf when the server offers it: the template is then skipped by length, never scanned.
public struct ReplicaSetSummary: KubernetesObject, Hashable, ProtobufDecodable {
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

    /// `apps/v1` ReplicaSet: metadata 1, spec 2 (its template 3: metadata 1, annotations 12), status 3 (replicas 1).
    public init(protobuf message: ProtobufReader) throws {
        metadata = ObjectMeta()
        templateAnnotations = [:]
        replicas = 0
        try message.forEach([1]) { metadata = try ObjectMeta(protobuf: $0.message) }
        try message.forEach([2, 3, 1, 12]) { annotation in
            var key = ""
            var text: String? = ""
            try annotation.message.forEach([1]) { key = try $0.string }
            // A long value is jumped over, never copied.
            try annotation.message.forEach([2]) { text = $0.length <= Self.maximumKeptValue ? try $0.string : nil }
            if let text { templateAnnotations[key] = text }
        }
        try message.forEach([3, 1]) { replicas = Int(try $0.integer) }
    }
}
