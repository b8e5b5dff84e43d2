import KubernetesClient
import Testing

/// The protobuf reader on hand-made messages: what it must never do is crash or read past its bytes.
/// (Objects the real API server sends are read in KubernetesClientIntegrationTests/ProtobufTests.)
@Suite("Protobuf reader")
struct ProtobufReaderTests {
    static func varint(_ value: UInt64) -> [UInt8] {
        var value = value
        var bytes: [UInt8] = []
        repeat {
            bytes.append(UInt8(value & 0x7F) | (value > 0x7F ? 0x80 : 0))
            value >>= 7
        } while value > 0
        return bytes
    }

    static func field(_ number: Int, _ payload: [UInt8]) -> [UInt8] {
        varint(UInt64(number << 3 | 2)) + varint(UInt64(payload.count)) + payload
    }

    static func field(_ number: Int, varint value: Int64) -> [UInt8] {
        varint(UInt64(number << 3)) + varint(UInt64(bitPattern: value))
    }

    /// ObjectMeta with a name and a creationTimestamp of `seconds`.
    static func meta(seconds: Int64) -> [UInt8] {
        field(1, Array("n".utf8)) + field(8, field(1, varint: seconds) + field(2, varint: 0))
    }

    @Test(arguments: [
        (Int64(0), "1970-01-01T00:00:00Z"), (951_782_400, "2000-02-29T00:00:00Z"), (1_796_191_491, "2026-12-02T06:04:51Z"),
        (-1, "1969-12-31T23:59:59Z"), (4_102_444_800, "2100-01-01T00:00:00Z"), (253_402_300_799, "9999-12-31T23:59:59Z"),
    ])
    func timestampsReadAsTheJSONEncodingWritesThem(seconds: Int64, expected: String) throws {
        let meta = try Self.meta(seconds: seconds).withUnsafeBytes { try ObjectMeta(protobuf: ProtobufReader($0)) }
        #expect(meta.name == "n")
        #expect(meta.creationTimestamp == expected)
    }

    @Test func everyTruncationIsAnErrorNotACrash() throws {
        let labels = Self.field(11, Self.field(1, Array("app".utf8)) + Self.field(2, Array("web".utf8)))
        let whole = Self.meta(seconds: 1_796_191_491) + labels + Self.field(7, varint: 300)
        let meta = try whole.withUnsafeBytes { try ObjectMeta(protobuf: ProtobufReader($0)) }
        #expect(meta.labels == ["app": "web"])
        #expect(meta.generation == 300)
        var failures = 0
        for length in 1..<whole.count {
            do {
                _ = try Array(whole.prefix(length)).withUnsafeBytes { try ObjectMeta(protobuf: ProtobufReader($0)) }
            } catch is ProtobufError {
                failures += 1
            }
        }
        // A cut inside a field fails; a cut between fields is a shorter, valid message.
        #expect(failures > whole.count / 2)
    }

    /// A Deployment's metadata and status; its spec (field 2) is jumped over, even when it is not a valid message.
    @Test func aDeploymentOutlineReadsMetadataAndStatusOnly() throws {
        let condition = Self.field(1, Array("Available".utf8)) + Self.field(2, Array("True".utf8)) + Self.field(4, Array("MinimumReplicasAvailable".utf8))
            + Self.field(5, Array("ok".utf8)) + Self.field(6, Self.field(1, varint: 0)) + Self.field(7, Self.field(1, varint: 951_782_400))
        // Zero counts come as fields too (unavailableReplicas here); JSON leaves them out, and so does the outline.
        let status = Self.field(1, varint: 4) + Self.field(2, varint: 3) + Self.field(3, varint: 2) + Self.field(4, varint: 1)
            + Self.field(5, varint: 0) + Self.field(6, condition) + Self.field(7, varint: 1) + Self.field(8, varint: 9)
        let message = Self.field(1, Self.meta(seconds: 0) + Self.field(7, varint: 5)) + Self.field(2, [0xFF, 0xFF, 0xFF]) + Self.field(3, status)
        let outline = try message.withUnsafeBytes { try DeploymentOutline(protobuf: ProtobufReader($0)) }
        #expect(outline.metadata.name == "n")
        #expect(outline.metadata.generation == 5)
        var expected = DeploymentStatus()
        (expected.observedGeneration, expected.replicas, expected.updatedReplicas) = (4, 3, 2)
        (expected.availableReplicas, expected.readyReplicas) = (1, 1)
        var available = DeploymentCondition(type: "Available", status: "True", reason: "MinimumReplicasAvailable", message: "ok")
        (available.lastUpdateTime, available.lastTransitionTime) = ("1970-01-01T00:00:00Z", "2000-02-29T00:00:00Z")
        expected.conditions = [available]
        #expect(outline.status == expected)
        #expect(outline.deployment.spec == nil)
    }

    /// Metadata alone reads any kind's message (its field 1): a server that sends the whole object when
    /// asked for `PartialObjectMetadata` is read the same.
    @Test func partialObjectMetadataReadsTheMetadataOfAWholeObject() throws {
        let whole = Self.field(1, Self.meta(seconds: 0) + Self.field(7, varint: 3)) + Self.field(2, [0xFF, 0xFF, 0xFF]) + Self.field(3, Self.field(1, varint: 3))
        let read = try whole.withUnsafeBytes { try PartialObjectMetadata(protobuf: ProtobufReader($0)) }
        let metadataOnly = Self.field(1, Self.meta(seconds: 0) + Self.field(7, varint: 3))
        let partial = try metadataOnly.withUnsafeBytes { try PartialObjectMetadata(protobuf: ProtobufReader($0)) }
        #expect(read.metadata.name == "n")
        #expect(read.metadata.generation == 3)
        #expect(read == partial)
    }

    @Test func unknownFieldsAndWireTypesAreSkippedOrRefused() throws {
        // Field 99 as a fixed64 and a fixed32, then the name: skipped, name read.
        let skipped = Self.varint(99 << 3 | 1) + [UInt8](repeating: 1, count: 8) + Self.varint(98 << 3 | 5) + [1, 2, 3, 4] + Self.field(1, Array("x".utf8))
        #expect(try skipped.withUnsafeBytes { try ObjectMeta(protobuf: ProtobufReader($0)) }.name == "x")
        // Wire type 3 (groups) is not used by Kubernetes: refused.
        #expect(throws: ProtobufError.self) { try ([UInt8](Self.varint(1 << 3 | 3))).withUnsafeBytes { try ObjectMeta(protobuf: ProtobufReader($0)) } }
        // A length past the end of the message.
        #expect(throws: ProtobufError.self) { try ([0x0A, 0x7F, 0x41]).withUnsafeBytes { try ObjectMeta(protobuf: ProtobufReader($0)) } }
        // No envelope: not protobuf.
        #expect(!Array("{\"kind\":\"List\"}".utf8).withUnsafeBytes { KubernetesProtobuf.isEnvelope($0) })
    }

    /// A Deployment message: metadata (named "d", generation 2), `spec` (DeploymentSpec's bytes), no status.
    static func deployment(spec: [UInt8]) -> [UInt8] {
        field(1, field(1, Array("d".utf8)) + field(7, varint: 2)) + field(2, spec)
    }

    /// DeploymentSpec: replicas 3, a rolling update with maxSurge "25%" and maxUnavailable 1, and a pod
    /// template with a volume (its source inlined in JSON), a container with a memory limit and
    /// supplemental groups written both unpacked and packed.
    static let spec: [UInt8] = {
        let intOrString = { (text: String?, number: Int64) -> [UInt8] in
            text.map { field(1, varint: 1) + field(3, Array($0.utf8)) } ?? (field(1, varint: 0) + field(2, varint: number))
        }
        let strategy = field(1, Array("RollingUpdate".utf8)) + field(2, field(1, intOrString(nil, 1)) + field(2, intOrString("25%", 0)))
        let limits = field(1, field(1, Array("memory".utf8)) + field(2, field(1, Array("256Mi".utf8))))
        let container = field(1, Array("app".utf8)) + field(2, Array("nginx".utf8)) + field(8, limits) + field(16, varint: 0)
        let volume = field(1, Array("scratch".utf8)) + field(2, field(2, []))
        let security = field(4, varint: 7) + field(4, [8, 9])
        let podSpec = field(1, volume) + field(2, container) + field(14, security)
        return field(1, varint: 3) + field(4, strategy) + field(3, field(2, podSpec))
    }()

    @Test func aDeploymentSpecReadsAsItsJSON() throws {
        let deployment = try Self.deployment(spec: Self.spec).withUnsafeBytes { try Deployment(protobuf: ProtobufReader($0)) }
        #expect(!deployment.specUnread)
        #expect(deployment.metadata.generation == 2)
        let expected: JSONValue = [
            "replicas": 3,
            "strategy": ["type": "RollingUpdate", "rollingUpdate": ["maxUnavailable": 1, "maxSurge": "25%"]],
            "template": ["spec": [
                "volumes": [["name": "scratch", "emptyDir": [:]]],
                "containers": [["name": "app", "image": "nginx", "resources": ["limits": ["memory": "256Mi"]]]],
                "securityContext": ["supplementalGroups": [7, 8, 9]],
            ]],
        ]
        #expect(deployment.spec == expected)
    }

    /// A field the schema does not know (a newer API server's) leaves the spec unread, never read without
    /// it; the rest of the Deployment is read.
    @Test func aFieldOutsideTheSchemaLeavesTheSpecUnread() throws {
        let podSpecWithNewField = Self.field(3, Self.field(2, Self.field(2, Self.field(1, Array("app".utf8))) + Self.field(999, varint: 1)))
        for spec in [Self.spec + Self.field(99, varint: 1), podSpecWithNewField] {
            let deployment = try Self.deployment(spec: spec).withUnsafeBytes { try Deployment(protobuf: ProtobufReader($0)) }
            #expect(deployment.specUnread)
            #expect(deployment.spec == nil)
            #expect(deployment.metadata.name == "d")
        }
        // A malformed message is still an error.
        #expect(throws: ProtobufError.self) {
            _ = try Array(Self.deployment(spec: Self.spec).dropLast()).withUnsafeBytes { try Deployment(protobuf: ProtobufReader($0)) }
        }
    }

    /// Two Deployments read from protobuf share one copy of what repeats across objects (as the JSON parser
    /// shares it): their namespace, annotation keys, owner's kind and container images.
    @Test func repeatedStringsOfDeploymentsReadFromProtobufAreShared() throws {
        let annotation = Self.field(12, Self.field(1, Array("cwo.dev/applied-intent".utf8)) + Self.field(2, Array("abc".utf8)))
        let owner = Self.field(13, Self.field(1, Array("ConfidentialWorkload".utf8)) + Self.field(3, Array("w".utf8)))
        let metadata = Self.field(1, Array("d".utf8)) + Self.field(3, Array("payments-production".utf8)) + annotation + owner
        let container = Self.field(1, Array("app".utf8)) + Self.field(2, Array("registry.example/app:1".utf8))
        let bytes = Self.field(1, metadata) + Self.field(2, Self.field(3, Self.field(2, Self.field(2, container))))
        let (first, second) = try bytes.withUnsafeBytes { (try Deployment(protobuf: ProtobufReader($0)), try Deployment(protobuf: ProtobufReader($0))) }
        func image(_ deployment: Deployment) -> String? { deployment.spec?[path: ["template", "spec", "containers"]]?.arrayValue?.first?["image"]?.stringValue }
        let texts: [(Deployment) -> String?] = [
            { $0.metadata.namespace }, { $0.metadata.annotations?.keys.first }, { $0.metadata.ownerReferences?.first?.kind }, image,
        ]
        for text in texts {
            let (a, b) = (try #require(text(first)), try #require(text(second)))
            #expect(a == b && StringInternerTests.storage(a) == StringInternerTests.storage(b), "\(a)")
        }
    }
}
