import ConfidentialWorkload
import Foundation
import KubernetesClient
import Testing
import TestSupport

@Suite("Confidential artifacts against the real control plane")
struct ArtifactIntegrationTests {
    static func keyVaultSpec(image: String = "nginx:1.27", replicas: Int = 0) -> JSONValue {
        [
            "replicas": .number(Double(replicas)),
            "attestation": ["maaEndpoint": "sharedeus.eus.attest.azure.net"],
            "keyVault": ["name": "cwo-vault", "keyName": "app-key", "clientID": "11111111-2222-3333-4444-555555555555"],
            "template": ["spec": ["containers": [["name": "app", "image": .string(image), "command": ["/app"], "resources": ["limits": ["memory": "256Mi"]]]]]],
        ]
    }

    @Test func theDeploymentCarriesPolicyAttestationAndKeyBinding() async throws {
        try await Harness.with("artifacts") { harness in
            _ = try await harness.createWorkload("bound", spec: Self.keyVaultSpec())
            let workload = try await harness.waitForStatus("bound", "Ready=True") { $0.condition("Ready")?.status == .true }
            let status = try #require(workload.status)
            let deployment = try #require(try await harness.deployment("bound"))
            let template = try #require(deployment.raw[path: ["spec", "template"]])

            // The policy annotation is base64 of the text whose SHA-256 is the reported hash.
            let annotation = try #require(template[path: ["metadata", "annotations", "io.katacontainers.config.agent.policy"]]?.stringValue)
            let text = try #require(Data(base64Encoded: annotation).flatMap { String(data: $0, encoding: .utf8) })
            #expect(text.hasPrefix("package agent_policy"))
            let hash = try await sha256(text)
            #expect(status.policyHash == hash)
            #expect(template[path: ["metadata", "annotations", "cwo.dev/policy-hash"]]?.stringValue == hash)
            #expect(status.policyMode == "Generated")

            // This server (1.20) has no native sidecars: the attestation container is an ordinary one, and status says so.
            let containers = try #require(template[path: ["spec", "containers"]]?.arrayValue)
            let attestation = try #require(containers.first { $0["name"] == "attestation" })
            #expect(attestation["env"]?.arrayValue?.contains { $0["name"] == "SkrSideCarArgs" } == true)
            #expect(template[path: ["spec", "volumes"]]?.arrayValue?.contains { $0[path: ["hostPath", "path"]] == "/opt/confidential-containers/share/kata-containers/reference-info-base64" } == true)
            #expect(status.condition("AttestationConfigured")?.message.contains("fell back to Sidecar") == true)

            // Workload identity and the SKR client variables.
            #expect(template[path: ["metadata", "labels", "azure.workload.identity/use"]] == "true")
            #expect(template[path: ["spec", "serviceAccountName"]] == "bound")
            let app = try #require(containers.first { $0["name"] == "app" })
            #expect(app["env"]?.arrayValue?.contains { $0["name"] == "SkrClientAKVEndpoint" && $0["value"] == "cwo-vault.vault.azure.net" } == true)
            let account: UntypedObject = try await harness.admin.get(.serviceAccounts, namespace: harness.namespace, name: "bound")
            #expect(account.metadata.annotations?["azure.workload.identity/client-id"] == "11111111-2222-3333-4444-555555555555")
            #expect(account.metadata.ownerReferences?.first?.kind == "ConfidentialWorkload")

            // The release policy is bound to the hash.
            let configMap: UntypedObject = try await harness.admin.get(.configMaps, namespace: harness.namespace, name: "bound-key-release")
            let releasePolicy = try #require(configMap.raw[path: ["data", "release-policy.json"]]?.stringValue)
            #expect(releasePolicy.contains(hash))
            #expect(status.keyRelease?.allowedHashes == [hash])
            #expect(status.keyRelease?.keyID == "https://cwo-vault.vault.azure.net/keys/app-key")
            for type in ["PolicyReady", "AttestationConfigured", "KeyReleaseBound"] {
                #expect(status.condition(type)?.status == .true, "\(type)")
            }
            #expect(status.condition("KeyReleaseBound")?.message.contains("az keyvault key create") == true)
        }
    }

    @Test func aRolloutAllowsBothHashesUntilTheOldPodsAreGone() async throws {
        try await Harness.with("rollout") { harness in
            _ = try await harness.createWorkload("roll", spec: Self.keyVaultSpec(image: "nginx:1.27", replicas: 1))
            // No kubelet runs here: play its part and mark the pods ready, so the Deployment can roll.
            let first = try await eventually(timeout: .seconds(30), "the first pods ready and one hash allowed") { () -> ConfidentialWorkload? in
                try await harness.markPodsReady("roll")
                let workload = try await harness.workload("roll")
                return workload.status?.condition("DeploymentAvailable")?.status == .true && workload.status?.keyRelease?.allowedHashes.count == 1 ? workload : nil
            }
            let oldHash = try #require(first.status?.policyHash)

            let _: UntypedObject = try await harness.admin.patch(
                Harness.workloads, namespace: harness.namespace, name: "roll",
                .merge(["spec": ["template": ["spec": ["containers": [["name": "app", "image": "nginx:1.28", "command": ["/app"], "resources": ["limits": ["memory": "256Mi"]]]]]]]]))
            // While old pods run, the release policy allows the old and the new hash.
            let during = try await harness.waitForStatus("roll", "two hashes during the rollout") { ($0.keyRelease?.allowedHashes.count ?? 0) == 2 }
            let newHash = try #require(during.status?.policyHash)
            #expect(newHash != oldHash)
            #expect(during.status?.keyRelease?.allowedHashes == [newHash, oldHash])
            let configMap: UntypedObject = try await harness.admin.get(.configMaps, namespace: harness.namespace, name: "roll-key-release")
            let text = try #require(configMap.raw[path: ["data", "release-policy.json"]]?.stringValue)
            #expect(text.contains(oldHash) && text.contains(newHash))

            // Once the new pods are ready the old ReplicaSet scales to zero, and only the new hash remains.
            let after = try await eventually(timeout: .seconds(45), "one hash after the rollout") { () -> ConfidentialWorkload? in
                try await harness.markPodsReady("roll")
                let workload = try await harness.workload("roll")
                return workload.status?.keyRelease?.allowedHashes == [newHash] ? workload : nil
            }
            #expect(after.status?.policyHash == newHash)
            let finalMap: UntypedObject = try await harness.admin.get(.configMaps, namespace: harness.namespace, name: "roll-key-release")
            #expect(finalMap.raw[path: ["data", "release-policy.json"]]?.stringValue?.contains(oldHash) == false)
        }
    }

    @Test func aProvidedPolicyIsUsedVerbatim() async throws {
        try await Harness.with("provided") { harness in
            let spec: JSONValue = [
                "replicas": 0, "policy": ["mode": "Provided", "configMapRef": ["name": "my-policy", "key": "policy.rego"]],
                "template": ["spec": ["containers": [["name": "app", "image": "nginx:1.27"]]]],
            ]
            _ = try await harness.createWorkload("given", spec: spec)
            let missing = try await harness.waitForStatus("given", "PolicyConfigMapNotFound") { $0.condition("Ready")?.reason == "PolicyConfigMapNotFound" }
            #expect(missing.status?.condition("PolicyReady")?.status == .false)
            #expect(try await harness.deployment("given") == nil)

            let policy = "package agent_policy\n\ndefault CreateContainerRequest := true\n# made by az confcom katapolicygen\n"
            let configMap: JSONValue = ["apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": "my-policy"], "data": ["policy.rego": .string(Data(policy.utf8).base64EncodedString())]]
            let _: UntypedObject = try await harness.admin.create(.configMaps, namespace: harness.namespace, try UntypedObject(configMap))
            // The ConfigMap is not watched (it is the user's, unlabelled); a workload edit or the periodic re-read picks it up.
            let _: UntypedObject = try await harness.admin.patch(Harness.workloads, namespace: harness.namespace, name: "given", .merge(["metadata": ["annotations": ["touch": "1"]]]))
            let ready = try await harness.waitForStatus("given", "the provided policy in use", timeout: .seconds(75)) { $0.policyMode == "Provided" }
            #expect(ready.status?.policyHash == (try await sha256(policy)))
            let deployment = try #require(try await harness.deployment("given"))
            #expect(deployment.raw[path: ["spec", "template", "metadata", "annotations", "io.katacontainers.config.agent.policy"]]?.stringValue == Data(policy.utf8).base64EncodedString())
            #expect(ready.status?.condition("PolicyReady")?.reason == "PolicyProvided")
        }
    }

    @Test func eachInvalidCaseGetsItsConditionAndOthersAreUndisturbed() async throws {
        try await Harness.with("invalid-artifacts") { harness in
            let app: JSONValue = ["name": "app", "image": "nginx:1.27"]
            let cases: [(String, JSONValue, String)] = [
                ("subpath", ["template": ["spec": ["containers": [["name": "app", "image": "nginx:1.27", "volumeMounts": [["name": "v", "mountPath": "/x", "subPath": "y"]]]], "volumes": [["name": "v", "emptyDir": [:]]]]]], "subPath"),
                ("sharepid", ["template": ["spec": ["shareProcessNamespace": true, "containers": [app]]]], "shareProcessNamespace"),
                ("hostpath", ["template": ["spec": ["containers": [app], "volumes": [["name": "h", "hostPath": ["path": "/"]]]]]], "hostPath"),
                ("hypervisor", ["template": ["metadata": ["annotations": ["io.katacontainers.config.hypervisor.default_vcpus": "8"]], "spec": ["containers": [app]]]], "hypervisor"),
                ("privileged", ["template": ["spec": ["containers": [["name": "app", "image": "nginx:1.27", "securityContext": ["privileged": true]]]]]], "privileged"),
                ("images", ["policy": ["allowedImages": ["nginx:1.28"]], "template": ["spec": ["containers": [app]]]], "allowedImages"),
                ("nomaa", ["keyVault": ["name": "v", "keyName": "k", "clientID": "c"], "template": ["spec": ["containers": [app]]]], "maaEndpoint"),
                ("allowall", ["policy": ["mode": "AllowAll"], "template": ["spec": ["containers": [app]]]], "allowInsecure"),
            ]
            for (name, spec, _) in cases { _ = try await harness.createWorkload(name, spec: spec) }
            _ = try await harness.createWorkload("fine", spec: simpleSpec())
            for (name, _, word) in cases {
                let workload = try await harness.waitForStatus(name, "InvalidSpec") { $0.condition("Ready")?.reason == "InvalidSpec" }
                #expect(workload.status?.condition("Ready")?.message.contains(word) == true, "\(name): \(workload.status?.condition("Ready")?.message ?? "")")
                #expect(try await harness.deployment(name) == nil, "\(name) got a Deployment")
            }
            _ = try await harness.waitForStatus("fine", "Ready=True") { $0.condition("Ready")?.status == .true }
        }
    }
}

func sha256(_ text: String) async throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("cwo-hash-\(UUID().uuidString)").path
    try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    defer { try? FileManager.default.removeItem(atPath: path) }
    return String(try await runCommand(["sha256sum", path]).prefix(64))
}

extension Harness {
    /// Plays the kubelet: marks every pod of the workload Running and Ready.
    func markPodsReady(_ workload: String) async throws {
        let pods: ObjectList<UntypedObject> = try await admin.list(.pods, namespace: namespace, options: .init(labelSelector: "cwo.dev/workload=\(workload)"))
        let now = StatusBuilder.timestamp()
        for pod in pods.items where pod.metadata.deletionTimestamp == nil {
            let ready = pod.raw[path: ["status", "conditions"]]?.arrayValue?.contains { $0["type"] == "Ready" && $0["status"] == "True" } ?? false
            if ready { continue }
            let status: JSONValue = ["status": [
                "phase": "Running", "startTime": .string(now),
                "conditions": [
                    ["type": "PodScheduled", "status": "True", "lastTransitionTime": .string(now)],
                    ["type": "Initialized", "status": "True", "lastTransitionTime": .string(now)],
                    ["type": "ContainersReady", "status": "True", "lastTransitionTime": .string(now)],
                    ["type": "Ready", "status": "True", "lastTransitionTime": .string(now)],
                ],
            ]]
            do {
                let _: UntypedObject = try await admin.patch(.pods, namespace: namespace, name: pod.name, subresource: "status", .merge(status))
            } catch let error as KubeError where error.reason == .notFound || error.reason == .conflict {
                continue
            }
        }
    }
}
