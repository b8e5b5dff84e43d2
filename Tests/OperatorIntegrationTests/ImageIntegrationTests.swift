import ConfidentialWorkload
import Foundation
import KubernetesClient
import Logging
import OCIRegistry
import Testing
import TestSupport

/// The operator with image resolution, against the real control plane and the real registry.
@Suite("Images resolved by the operator, against the real control plane and registry")
struct ImageIntegrationTests {
    /// The image of the template's own container (cwo adds the attestation sidecar beside it).
    static func appImage(_ deployment: UntypedObject?) -> String? {
        deployment?.raw[path: ["spec", "template", "spec", "containers"]]?.arrayValue?.first { $0["name"] == "app" }?["image"]?.stringValue
    }

    @Test func tagsRunByDigestFollowAMovedTagKeepItThroughARestartAndReportProblems() async throws {
        let registry = try await TestRegistry.start()
        let client = try RegistryClient(options: .init(caFile: registry.caFile), logger: Logger(label: "test"))
        let login = RegistryClient.Credentials(username: registry.username, password: registry.password)
        // A short TTL, so the moved tag is seen within the test.
        let resolver = ImageResolver(lookup: { reference throws(RegistryError) in try await client.resolve(reference, credentials: login) },
                                     ttl: .seconds(2))
        var failure: (any Error)?
        do {
            let first = try await registry.pushImage("team/app", tag: "v1", config: ["Entrypoint": ["/app"], "User": "10:10"])
            let reference = "\(registry.host)/team/app:v1"
            var namespace = ""
            var running = ""
            try await Harness.with("images", recordEvents: true, images: resolver) { harness in
                _ = try await harness.createWorkload("web", spec: simpleSpec(image: reference))
                let locked = "\(registry.host)/team/app@\(first.digest)"
                _ = try await eventually(timeout: .seconds(20), "the Deployment runs \(locked)") {
                    Self.appImage(try await harness.deployment("web")) == locked ? true : nil
                }
                let resolved = try await harness.waitForStatus("web", "ImagesResolved True") { status in
                    status.condition(ConditionType.imagesResolved)?.status == .true
                }
                #expect(resolved.status?.condition(ConditionType.imagesResolved)?.message.contains(first.digest) == true)
                #expect(resolved.status?.images == [ImageStatus(name: "app", reference: reference, digest: first.digest)])

                let second = try await registry.pushImage("team/app", tag: "v1", config: ["Entrypoint": ["/app"], "User": "10:10"])
                let moved = "\(registry.host)/team/app@\(second.digest)"
                _ = try await eventually(timeout: .seconds(30), "the Deployment follows the moved tag to \(moved)") {
                    Self.appImage(try await harness.deployment("web")) == moved ? true : nil
                }
                let event = try await harness.waitForEvent(reason: "ImageDigestChanged")
                #expect(event.raw["note"]?.stringValue?.contains("now resolves to \(second.digest) (was \(first.digest))") == true)

                let absent = "\(registry.host)/team/absent:v1"
                _ = try await harness.createWorkload("missing", spec: simpleSpec(image: absent))
                let missing = try await harness.waitForStatus("missing", "ImagesResolved ImageNotFound") { status in
                    status.condition(ConditionType.imagesResolved)?.reason == "ImageNotFound"
                }
                #expect(missing.status?.condition(ConditionType.imagesResolved)?.status == .false)
                #expect(missing.status?.condition(ConditionType.ready)?.reason == "ImageNotFound")
                // Its image keeps today's behaviour: run as written, while the other workload is unaffected.
                #expect(Self.appImage(try await harness.deployment("missing")) == absent)
                #expect(Self.appImage(try await harness.deployment("web")) == moved)
                namespace = harness.namespace
                running = moved
            }
            // cwo restarts while the registry is down: it has no facts, and the pods keep their digest.
            await registry.stop()
            let restarted = ImageResolver(lookup: { reference throws(RegistryError) in try await client.resolve(reference, credentials: login) })
            try await Harness.with("images", namespace: namespace, images: restarted) { harness in
                let down = try await harness.waitForStatus("web", "ImagesResolved RegistryUnreachable") { status in
                    status.condition(ConditionType.imagesResolved)?.reason == "RegistryUnreachable"
                }
                #expect(down.status?.condition(ConditionType.ready)?.status == .false)
                #expect(Self.appImage(try await harness.deployment("web")) == running)
            }
        } catch {
            failure = error
        }
        try? await client.shutdown()
        await registry.stop()
        if let failure { throw failure }
    }
}
