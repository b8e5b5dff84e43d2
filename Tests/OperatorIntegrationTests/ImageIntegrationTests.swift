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

    static func pulling(_ spec: JSONValue, secret: String) -> JSONValue {
        var spec = spec
        spec["template"]?["spec"]?["imagePullSecrets"] = [["name": .string(secret)]]
        return spec
    }

    /// The template's `image`, and the attestation container's image from the same registry (cwo resolves
    /// and locks the containers it adds too).
    static func spec(_ image: String, attestation: String) -> JSONValue {
        var spec = simpleSpec(image: image)
        spec["attestation"] = ["image": .string(attestation)]
        return spec
    }

    static func attestationImage(_ deployment: UntypedObject?) -> String? {
        let podSpec = deployment?.raw[path: ["spec", "template", "spec"]]
        let containers = (podSpec?["initContainers"]?.arrayValue ?? []) + (podSpec?["containers"]?.arrayValue ?? [])
        return containers.first { $0["name"] == "attestation" }?["image"]?.stringValue
    }

    @Test func tagsRunByDigestFollowAMovedTagKeepItThroughARestartAndReportProblems() async throws {
        let registry = try await TestRegistry.start()
        let client = try RegistryClient(options: .init(caFile: registry.caFile), logger: Logger(label: "test"))
        // As `cwo run` makes it: each lookup with the credentials of the workload's own pull secrets.
        let lookup: ImageResolver.Lookup = { request throws(RegistryError) in try await client.resolve(request.reference, credentials: request.credentials) }
        // A short TTL, so the moved tag is seen within the test.
        let resolver = ImageResolver(lookup: lookup, ttl: .seconds(2))
        var failure: (any Error)?
        do {
            let first = try await registry.pushImage("team/app", tag: "v1", config: ["Entrypoint": ["/app"], "User": "10:10"])
            let reference = "\(registry.host)/team/app:v1"
            let skr = try await registry.pushImage("aci/skr", tag: "2.7", config: ["Entrypoint": ["/skr.sh"]])
            let attestation = "\(registry.host)/aci/skr:2.7"
            var namespace = ""
            var running = ""
            try await Harness.with("images", recordEvents: true, images: resolver) { harness in
                // The registry needs a login: the pods' pull secret (kubectl create secret docker-registry) gives it,
                // one through the template and one through the service account.
                let auth = Data("\(registry.username):\(registry.password)".utf8).base64EncodedString()
                let config = Data(#"{"auths":{"\#(registry.host)":{"auth":"\#(auth)"}}}"#.utf8).base64EncodedString()
                for name in ["regcred", "account-regcred"] {
                    let _: UntypedObject = try await harness.admin.create(.secrets, namespace: harness.namespace, try UntypedObject(
                        ["apiVersion": "v1", "kind": "Secret", "metadata": ["name": .string(name)], "type": "kubernetes.io/dockerconfigjson",
                         "data": [".dockerconfigjson": .string(config)]]))
                }
                let _: UntypedObject = try await harness.admin.create(.serviceAccounts, namespace: harness.namespace, try UntypedObject(
                    ["apiVersion": "v1", "kind": "ServiceAccount", "metadata": ["name": "puller"], "imagePullSecrets": [["name": "account-regcred"]]]))
                // Without a pull secret the same image is refused, and the other workloads' secrets do not serve it.
                _ = try await harness.createWorkload("anonymous", spec: Self.spec(reference, attestation: attestation))
                _ = try await harness.createWorkload("web", spec: Self.pulling(Self.spec(reference, attestation: attestation), secret: "regcred"))
                let anonymous = try await harness.waitForStatus("anonymous", "ImagesResolved Unauthorized") { status in
                    status.condition(ConditionType.imagesResolved)?.reason == "Unauthorized"
                }
                #expect(anonymous.status?.condition(ConditionType.ready)?.status == .false)
                // Once neither image is still being looked up, the Deployment is created with the images as written.
                _ = try await eventually(timeout: .seconds(20), "an unresolved image runs as written") {
                    Self.appImage(try await harness.deployment("anonymous")) == reference ? true : nil
                }
                var viaAccount = Self.spec(reference, attestation: attestation)
                viaAccount["template"]?["spec"]?["serviceAccountName"] = "puller"
                _ = try await harness.createWorkload("via-account", spec: viaAccount)
                let locked = "\(registry.host)/team/app@\(first.digest)"
                _ = try await eventually(timeout: .seconds(20), "the Deployment runs \(locked)") {
                    Self.appImage(try await harness.deployment("web")) == locked ? true : nil
                }
                let resolved = try await harness.waitForStatus("web", "ImagesResolved True") { status in
                    status.condition(ConditionType.imagesResolved)?.status == .true
                }
                #expect(resolved.status?.condition(ConditionType.imagesResolved)?.message.contains(first.digest) == true)
                #expect(resolved.status?.images == [ImageStatus(name: "app", reference: reference, digest: first.digest)])
                #expect(Self.attestationImage(try await harness.deployment("web")) == "\(registry.host)/aci/skr@\(skr.digest)")
                _ = try await eventually(timeout: .seconds(20), "the service account's pull secret serves its pods' images") {
                    Self.appImage(try await harness.deployment("via-account")) == locked ? true : nil
                }

                let second = try await registry.pushImage("team/app", tag: "v1", config: ["Entrypoint": ["/app"], "User": "10:10"])
                let moved = "\(registry.host)/team/app@\(second.digest)"
                _ = try await eventually(timeout: .seconds(30), "the Deployment follows the moved tag to \(moved)") {
                    Self.appImage(try await harness.deployment("web")) == moved ? true : nil
                }
                let event = try await harness.waitForEvent(reason: "ImageDigestChanged")
                #expect(event.raw["note"]?.stringValue?.contains("now resolves to \(second.digest) (was \(first.digest))") == true)

                let absent = "\(registry.host)/team/absent:v1"
                _ = try await harness.createWorkload("missing", spec: Self.pulling(Self.spec(absent, attestation: attestation), secret: "regcred"))
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
            let restarted = ImageResolver(lookup: lookup)
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
