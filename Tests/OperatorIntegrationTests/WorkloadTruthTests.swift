import ConfidentialWorkload
import ControllerRuntime
import Foundation
import KubernetesClient
import Testing
import TestSupport

/// The workload is the whole truth: what is removed from it, or switched off, leaves the cluster too,
/// and the Deployment ends up as `cwo render` prints it.
@Suite("The workload is the whole truth, against the real control plane")
struct WorkloadTruthTests {
    static let maa = "sharedeus.eus.attest.azure.net"

    static func richSpec() -> JSONValue {
        [
            "replicas": 0,
            "nodeSelector": ["workload": "confidential", "zone": "a"],
            "template": [
                "metadata": ["labels": ["tier": "web", "team": "payments"], "annotations": ["note": "kept", "owner": "alice"]],
                "spec": [
                    "tolerations": [["key": "sev", "operator": "Exists", "effect": "NoSchedule"]],
                    "containers": [[
                        "name": "app", "image": "nginx:1.27",
                        "ports": [["containerPort": 80], ["containerPort": 443]],
                        "resources": ["requests": ["cpu": "100m", "memory": "64Mi"], "limits": ["memory": "256Mi"]],
                    ]],
                ],
            ],
        ]
    }

    @Test func removalsThatDoNotChangeThePolicyReachTheDeployment() async throws {
        try await Harness.with("removals") { harness in
            _ = try await harness.createWorkload("web", spec: Self.richSpec())
            let before = try await harness.waitForRenderedDeployment("web")
            #expect(before.raw[path: ["spec", "template", "spec", "nodeSelector", "zone"]] == "a")
            let hashBefore = before.raw[path: ["spec", "template", "metadata", "annotations", "cwo.dev/policy-hash"]]

            var trimmed = Self.richSpec()
            trimmed["nodeSelector"] = ["workload": "confidential"]
            trimmed["template"]?["metadata"] = ["labels": ["tier": "web"], "annotations": ["note": "kept"]]
            trimmed["template"]?["spec"]?["tolerations"] = nil
            trimmed["template"]?["spec"]?["containers"] = [[
                "name": "app", "image": "nginx:1.27", "ports": [["containerPort": 80]], "resources": ["limits": ["memory": "256Mi"]],
            ]]
            try await harness.replaceSpec("web", trimmed)
            let after = try await harness.waitForRenderedDeployment("web")
            let template = try #require(after.raw[path: ["spec", "template"]])
            #expect(template[path: ["spec", "nodeSelector", "zone"]] == nil, "nodeSelector entry removed")
            #expect(template[path: ["metadata", "labels", "team"]] == nil, "template label removed")
            #expect(template[path: ["metadata", "annotations", "owner"]] == nil, "template annotation removed")
            #expect(template[path: ["spec", "tolerations"]] == nil, "tolerations removed")
            let app = try #require(template[path: ["spec", "containers"]]?.arrayValue?.first)
            #expect(app["ports"]?.arrayValue?.count == 1, "container port removed")
            #expect(app[path: ["resources", "requests"]] == nil, "requests removed")
            // These fields are not in the agent policy: the pods' policy did not change.
            #expect(template[path: ["metadata", "annotations", "cwo.dev/policy-hash"]] == hashBefore)
            _ = try await harness.waitForStatus("web", "observedGeneration 2") { $0.observedGeneration == 2 }
        }
    }

    @Test func switchingKeyVaultOffRemovesWhatItAddedAndStatusCatchesUp() async throws {
        try await Harness.with("kv-off", recordEvents: true) { harness in
            // Not cwo's, though it has cwo's label and the name cwo would use: never deleted.
            let foreign: JSONValue = [
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": ["name": "other-key-release", "labels": ["app.kubernetes.io/managed-by": "cwo"]], "data": ["x": "y"],
            ]
            let _: UntypedObject = try await harness.admin.apply(.configMaps, namespace: harness.namespace, name: "other-key-release", foreign, fieldManager: "someone")
            _ = try await harness.createWorkload("other", spec: simpleSpec())

            var spec = simpleSpec()
            spec["attestation"] = ["maaEndpoint": .string(Self.maa)]
            spec["keyVault"] = ["name": "cwo-vault", "keyName": "app-key", "clientID": "11111111-2222-3333-4444-555555555555"]
            _ = try await harness.createWorkload("bound", spec: spec)
            let bound = try await harness.waitForRenderedDeployment("bound")
            #expect(bound.raw[path: ["spec", "template", "spec", "serviceAccountName"]] == "bound")
            #expect(bound.raw[path: ["spec", "template", "metadata", "labels", "azure.workload.identity/use"]] == "true")
            let account: UntypedObject = try await harness.admin.get(.serviceAccounts, namespace: harness.namespace, name: "bound")
            #expect(account.metadata.annotations?["azure.workload.identity/client-id"] == "11111111-2222-3333-4444-555555555555")
            let _: UntypedObject = try await harness.admin.get(.configMaps, namespace: harness.namespace, name: "bound-key-release")
            _ = try await harness.waitForStatus("bound", "keyRelease in status") { $0.keyRelease != nil }

            spec["keyVault"] = nil
            try await harness.replaceSpec("bound", spec)
            let off = try await harness.waitForStatus("bound", "keyRelease gone from status") { status in
                status.keyRelease == nil && status.condition("KeyReleaseBound")?.reason == "KeyVaultNotConfigured"
            }
            #expect(off.status?.condition("Ready")?.observedGeneration == off.metadata.generation)
            let unbound = try await harness.waitForRenderedDeployment("bound")
            let template = try #require(unbound.raw[path: ["spec", "template"]])
            #expect(template[path: ["spec", "serviceAccountName"]] == nil)
            #expect(template[path: ["metadata", "labels", "azure.workload.identity/use"]] == nil)
            let env = template[path: ["spec", "containers"]]?.arrayValue?.first?["env"]?.arrayValue ?? []
            #expect(!env.contains { $0["name"]?.stringValue?.hasPrefix("Skr") == true }, "Key Vault variables removed: \(env)")
            try await waitAbsent(harness, .serviceAccounts, "bound")
            try await waitAbsent(harness, .configMaps, "bound-key-release")
            _ = try await harness.waitForEvent(reason: "ChildDeleted")
            // The one cwo did not create is still there.
            let kept: UntypedObject = try await harness.admin.get(.configMaps, namespace: harness.namespace, name: "other-key-release")
            #expect(kept.raw[path: ["data", "x"]] == "y")
        }
    }

    @Test func switchingAttestationOffRemovesTheContainer() async throws {
        try await Harness.with("att-off") { harness in
            var spec = simpleSpec()
            spec["attestation"] = ["maaEndpoint": .string(Self.maa)]
            _ = try await harness.createWorkload("att", spec: spec)
            let on = try await harness.waitForRenderedDeployment("att")
            let names = { (deployment: UntypedObject) -> [String] in
                let podSpec = deployment.raw[path: ["spec", "template", "spec"]]
                return ((podSpec?["containers"]?.arrayValue ?? []) + (podSpec?["initContainers"]?.arrayValue ?? [])).compactMap { $0["name"]?.stringValue }
            }
            #expect(names(on).contains("attestation"))

            spec["attestation"] = ["enabled": false]
            try await harness.replaceSpec("att", spec)
            let off = try await harness.waitForRenderedDeployment("att")
            #expect(names(off) == ["app"])
            #expect(off.raw[path: ["spec", "template", "spec", "volumes"]] == nil, "the attestation volume went too")
            _ = try await harness.waitForStatus("att", "AttestationDisabled and Ready") {
                $0.condition("AttestationConfigured")?.reason == "AttestationDisabled" && $0.condition("Ready")?.status == .true
            }
        }
    }

    @Test func changingThePolicyModeReplacesThePolicy() async throws {
        try await Harness.with("mode") { harness in
            var spec = simpleSpec()
            _ = try await harness.createWorkload("mode", spec: spec)
            let generated = try await harness.waitForStatus("mode", "Generated") { $0.policyMode == "Generated" && $0.policyHash != nil }
            spec["policy"] = ["mode": "AllowAll", "allowInsecure": true]
            try await harness.replaceSpec("mode", spec)
            let allowAll = try await harness.waitForStatus("mode", "AllowAll") { $0.policyMode == "AllowAll" }
            #expect(allowAll.status?.policyHash != generated.status?.policyHash)
            #expect(allowAll.status?.condition("PolicyReady")?.reason == "AllowAllInsecure")
            _ = try await harness.waitForRenderedDeployment("mode")

            spec["policy"] = nil
            try await harness.replaceSpec("mode", spec)
            let back = try await harness.waitForStatus("mode", "Generated again") { $0.policyMode == "Generated" }
            #expect(back.status?.policyHash == generated.status?.policyHash, "the same spec gives the same policy")
            _ = try await harness.waitForRenderedDeployment("mode")
        }
    }

    @Test func aGitOpsReapplyOfAnOlderVersionRestoresIt() async throws {
        try await Harness.with("gitops") { harness in
            let v1 = simpleSpec()
            _ = try await harness.createWorkload("app", spec: v1)
            let first = try await harness.waitForRenderedDeployment("app")
            _ = try await harness.waitForStatus("app", "v1 reported") { $0.observedGeneration == 1 }

            let v2 = Self.richSpec()
            try await harness.replaceSpec("app", v2)
            _ = try await harness.waitForRenderedDeployment("app")
            _ = try await harness.waitForStatus("app", "v2 reported") { $0.observedGeneration == 2 }

            try await harness.replaceSpec("app", v1)
            let restored = try await harness.waitForRenderedDeployment("app")
            #expect(restored.metadata.annotations?[Names.intentAnnotation] == first.metadata.annotations?[Names.intentAnnotation])
            let template = try #require(restored.raw[path: ["spec", "template"]])
            #expect(template[path: ["spec", "nodeSelector"]] == nil)
            #expect(template[path: ["spec", "tolerations"]] == nil)
            #expect(template[path: ["metadata", "annotations", "note"]] == nil)
            let app = try #require(template[path: ["spec", "containers"]]?.arrayValue?.first)
            // The API server defaults `resources` to {}: nothing of v2's requests and limits is left.
            #expect(app["ports"] == nil && app["resources"]?.objectValue?.isEmpty ?? true, "\(app)")
            #expect(template[path: ["metadata", "annotations", "cwo.dev/policy-hash"]] == first.raw[path: ["spec", "template", "metadata", "annotations", "cwo.dev/policy-hash"]])
            _ = try await harness.waitForStatus("app", "v3 reported") { $0.observedGeneration == 3 }
        }
    }

    /// An edit and its undo sent back to back (a GitOps tool flapping, `kubectl apply` of two revisions): the
    /// undo may be reconciled before the watch brings back the edit's apply, while the cache still holds
    /// a Deployment equal to the undone spec. The Deployment must end as the workload ends. (Here the
    /// controller manager's status write of each rollout reconciles the workload again, which hides that
    /// race: ReconcileBranchTests makes it happen; this proves the flapping ends right on a real server.)
    @Test func anEditAndItsUndoBackToBackEndAsTheUndo() async throws {
        try await Harness.with("flap") { harness in
            let v1 = simpleSpec(replicas: 0)
            _ = try await harness.createWorkload("app", spec: v1)
            _ = try await harness.waitForRenderedDeployment("app")
            for round in 1...5 {
                try await harness.replaceSpec("app", simpleSpec(replicas: 0, image: "nginx:1.28"))
                try await harness.replaceSpec("app", v1)
                let generation = Int64(1 + 2 * round)
                _ = try await harness.waitForStatus("app", "round \(round) reported") { $0.observedGeneration == generation }
                let live = try await harness.waitForRenderedDeployment("app")
                #expect(live.raw[path: ["spec", "template", "spec", "containers"]]?.arrayValue?.first?["image"] == "nginx:1.27")
            }
        }
    }

    /// Every status shape the builders produce is accepted by the CRD's schema on the real server (each
    /// on a workload of its own; the moves between shapes are cwo's status writes in the tests above).
    @Test func everyStatusShapeIsAcceptedByTheSchema() async throws {
        // No operator: the test is the only writer of these statuses.
        try await Harness.with("status-shapes", start: false) { harness in
            let spec: JSONValue = ["template": ["spec": ["containers": [container()]]], "replicas": 0]
            for (index, (name, status)) in StatusShapes.all().enumerated() {
                let workload = "shape-\(index)"
                _ = try await harness.createWorkload(workload, spec: spec)
                let body: JSONValue = [
                    "apiVersion": "cwo.dev/v1alpha1", "kind": "ConfidentialWorkload",
                    "metadata": ["name": .string(workload), "namespace": .string(harness.namespace)], "status": try JSONValue(encoding: status),
                ]
                let written: ConfidentialWorkload = try await harness.admin.apply(
                    Harness.workloads, namespace: harness.namespace, name: workload, subresource: "status", body, fieldManager: "cwo", force: true)
                #expect(written.status == status, "\(name)")
            }
        }
    }

    func waitAbsent(_ harness: Harness, _ resource: Resource, _ name: String) async throws {
        _ = try await eventually(timeout: .seconds(30), "\(resource.kind) \(name) deleted") { () -> Bool? in
            do {
                let _: UntypedObject = try await harness.admin.get(resource, namespace: harness.namespace, name: name)
                return nil
            } catch let error as KubeError where error.reason == .notFound {
                return true
            }
        }
    }
}

/// Statuses built by `StatusBuilder` from each kind of observation cwo makes.
enum StatusShapes {
    static func all() -> [(String, WorkloadStatus)] {
        let now = StatusBuilder.timestamp()
        func observation(_ change: (inout Observation) -> Void) -> Observation {
            var observation = Observation(
                generation: 1, deploymentName: "shapes", specErrors: nil, runtimeClassName: "kata-cc", runtimeClassExists: true, deployment: nil)
            change(&observation)
            return observation
        }
        let hash = String(repeating: "a", count: 64)
        var unmanaged = KeyReleaseStatus(allowedHashes: [hash], configMapName: "shapes-key-release", keyID: "https://v.vault.azure.net/keys/k", releasePolicy: "Unmanaged")
        var managed = unmanaged
        managed.releasePolicy = "Managed"
        managed.publishedHashes = [hash, String(repeating: "b", count: 64)]
        managed.keyVersion = "0123456789abcdef"
        var failing = managed
        failing.publishedHashes = nil
        failing.keyVersion = nil
        unmanaged.allowedHashes = [hash, String(repeating: "c", count: 64)]
        let shapes: [(String, Observation)] = [
            ("no key vault", observation { $0.policyHash = hash; $0.policyMode = "Generated" }),
            ("unmanaged, during a rollout", observation { $0.policyHash = hash; $0.policyMode = "Generated"; $0.keyRelease = unmanaged }),
            ("managed and synced", observation { $0.policyHash = hash; $0.policyMode = "Generated"; $0.keyRelease = managed }),
            ("managed, never synced", observation { $0.policyHash = hash; $0.policyMode = "Provided"; $0.keyRelease = failing }),
            ("invalid spec, nothing before", observation { $0.specErrors = SpecErrors([SpecError("spec.replicas", "must be at least 0")]) }),
            ("runtime class missing", observation { $0.runtimeClassExists = false; $0.policyHash = hash; $0.policyMode = "AllowAll" }),
        ]
        var result: [(String, WorkloadStatus)] = []
        var previous: WorkloadStatus?
        for (name, shape) in shapes {
            let status = StatusBuilder.status(shape, previous: previous, now: now)
            result.append((name, status))
            previous = status
        }
        // An invalid edit of a workload that had a managed key: status keeps what it said about it.
        var invalid = observation { $0.specErrors = SpecErrors([SpecError("spec.template", "bad")]) }
        invalid.generation = 2
        let withKey = StatusBuilder.status(shapes[2].1, previous: nil, now: now)
        result.append(("invalid edit after managed", StatusBuilder.status(invalid, previous: withKey, now: now)))
        return result
    }
}
