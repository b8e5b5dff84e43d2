import ConfidentialWorkload
import Foundation
import KubernetesClient
import Testing
import TestSupport

@Suite struct ArtifactTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Loads a sample the way `cwo render` does (namespace default, zero UID).
    static func sample(_ name: String) throws -> ConfidentialWorkload {
        let text = try String(contentsOf: root.appendingPathComponent("manifests/samples/\(name).yaml"), encoding: .utf8)
        var workload = try #require(try YAMLDocuments.parse(text).first).decode(as: ConfidentialWorkload.self)
        workload.metadata.namespace = "default"
        workload.metadata.uid = "00000000-0000-0000-0000-000000000000"
        return workload
    }

    /// The rendered secure-processor sample, byte for byte. Set CWO_UPDATE_GOLDEN=1 to rewrite after a
    /// deliberate change, and review the diff: it is the policy users get.
    @Test(arguments: ["secure-processor", "hello", "coco-secret-reader"])
    func renderedSamplesMatchTheirGoldenFiles(sample: String) throws {
        let state = try DesiredState.build(try Self.sample(sample)).get()
        let rendered = try YAMLDocuments.dump(state.objects)
        let golden = Self.root.appendingPathComponent("Tests/ConfidentialWorkloadTests/Golden/\(sample).yaml")
        if ProcessInfo.processInfo.environment["CWO_UPDATE_GOLDEN"] == "1" {
            try rendered.write(to: golden, atomically: true, encoding: .utf8)
        }
        let expected = try String(contentsOf: golden, encoding: .utf8)
        #expect(rendered == expected, "re-run with CWO_UPDATE_GOLDEN=1 and review the diff if the change is intended")
    }

    @Test func annotationIsBase64OfTheTextAndTheHashIsItsSHA256() async throws {
        let state = try DesiredState.build(try Self.sample("secure-processor")).get()
        let annotations = try #require(state.deployment[path: ["spec", "template", "metadata", "annotations"]])
        let encoded = try #require(annotations["io.katacontainers.config.agent.policy"]?.stringValue)
        let decoded = try #require(Data(base64Encoded: encoded).flatMap { String(data: $0, encoding: .utf8) })
        #expect(decoded == state.policy.text)
        #expect(decoded.hasPrefix("package agent_policy\n"))
        #expect(decoded.contains("\npolicy_data := {"))
        #expect(encoded.count % 4 == 0, "padded standard base64")
        #expect(annotations["cwo.dev/policy-hash"]?.stringValue == state.policy.hash)
        #expect(state.policy.hash == (try await sha256sum(decoded)))
    }

    @Test func theSameWorkloadAlwaysYieldsTheSameBytes() throws {
        let workload = try Self.sample("secure-processor")
        let first = try DesiredState.build(workload).get()
        for _ in 0..<10 {
            let again = try DesiredState.build(workload).get()
            #expect(again.policy.text == first.policy.text)
            #expect(try YAMLDocuments.dump(again.objects) == YAMLDocuments.dump(first.objects))
        }
    }

    @Test func changingTheTemplateChangesTheHash() throws {
        var workload = try Self.sample("secure-processor")
        let before = try DesiredState.build(workload).get().policy.hash
        workload.spec?["template"]?["spec"]?["containers"] = [["name": "processor", "image": "mcr.microsoft.com/acc/samples/kafka/consumer:1.1"]]
        let after = try DesiredState.build(workload).get().policy.hash
        #expect(before != after)
    }

    /// The policy's hash is status.policyHash; PolicyReady's message, without it, is the same for every
    /// workload of one shape (and held once in cwo's cache, not once per workload).
    @Test func policyReadySaysTheSameForWorkloadsOfOneShape() throws {
        var first = try Self.sample("secure-processor")
        var second = first
        second.metadata.name = "other"
        second.metadata.namespace = "elsewhere"
        let states = try [first, second].map { try DesiredState.build($0).get() }
        #expect(states[0].policy.hash != states[1].policy.hash, "the name and namespace are in the policy")
        let messages = states.map { $0.conditions.first { $0.type == ConditionType.policyReady }?.message }
        #expect(messages[0] != nil && messages[0] == messages[1])
        #expect(messages[0]?.hasPrefix("generated policy; not enforced: ") == true)
        // A provided or allow-all policy's message leaves its hash out as well.
        first.spec?["policy"] = ["mode": "AllowAll", "allowInsecure": true]
        let allowAll = try DesiredState.build(first).get()
        let insecure = try #require(allowAll.conditions.first { $0.type == ConditionType.policyReady })
        #expect(insecure.reason == "AllowAllInsecure" && !insecure.message.contains(allowAll.policy.hash))
        var context = BuildContext()
        context.providedPolicy = "package agent_policy\ndefault CreateContainerRequest := true\n"
        first.spec?["policy"] = ["mode": "Provided", "configMapRef": ["name": "p", "key": "policy.rego"]]
        let provided = try DesiredState.build(first, context: context).get()
        let given = try #require(provided.conditions.first { $0.type == ConditionType.policyReady })
        #expect(given.message.hasPrefix("provided policy from ConfigMap p") && !given.message.contains(provided.policy.hash))
    }

    @Test func attestationContainerAsTheAKSGuideWiresIt() throws {
        let state = try DesiredState.build(try Self.sample("secure-processor")).get()
        let podSpec = try #require(state.deployment[path: ["spec", "template", "spec"]])
        let attestation = try #require(podSpec["initContainers"]?.arrayValue?.first)
        #expect(attestation["name"] == "attestation")
        #expect(attestation["image"] == "mcr.microsoft.com/aci/skr:2.7")
        #expect(attestation["restartPolicy"] == "Always")
        #expect(attestation[path: ["startupProbe", "httpGet", "path"]] == "/status")
        #expect(attestation[path: ["resources", "limits"]] == ["cpu": "100m", "memory": "128Mi"])
        let args = try #require(attestation["env"]?.arrayValue?.first { $0["name"] == "SkrSideCarArgs" }?["value"]?.stringValue)
        let json = try #require(Data(base64Encoded: args))
        let info = try JSONDecoder().decode(JSONValue.self, from: json)
        #expect(info == ["certcache": ["endpoint_type": "LocalTHIM", "endpoint": "169.254.169.254/metadata/THIM/amd/certification"]])
        #expect(podSpec["volumes"] == [["name": "cwo-reference-info", "hostPath": ["path": "/opt/confidential-containers/share/kata-containers/reference-info-base64", "type": "File"]]])
        #expect(attestation["volumeMounts"]?.arrayValue?.first?["readOnly"] == true)
    }

    @Test func olderServersGetAnOrdinarySidecarAndAreToldSo() throws {
        let state = try DesiredState.build(try Self.sample("secure-processor"), context: BuildContext(nativeSidecars: false)).get()
        let podSpec = try #require(state.deployment[path: ["spec", "template", "spec"]])
        #expect(podSpec["initContainers"] == nil)
        let sidecar = try #require(podSpec["containers"]?.arrayValue?.last)
        #expect(sidecar["name"] == "attestation")
        #expect(sidecar["restartPolicy"] == nil && sidecar["startupProbe"] == nil, "an older server rejects probes on init containers; a plain container has none")
        let condition = try #require(state.conditions.first { $0.type == "AttestationConfigured" })
        #expect(condition.message.contains("fell back to Sidecar"))
    }

    @Test func keyVaultBindingMakesIdentityEnvAndReleasePolicy() throws {
        let state = try DesiredState.build(try Self.sample("secure-processor"), context: BuildContext(runningHashes: ["0ld"])).get()
        let template = try #require(state.deployment[path: ["spec", "template"]])
        #expect(template[path: ["metadata", "labels", "azure.workload.identity/use"]] == "true")
        #expect(template[path: ["spec", "serviceAccountName"]] == "secure-processor")
        let app = try #require(template[path: ["spec", "containers"]]?.arrayValue?.first)
        let env = Dictionary(uniqueKeysWithValues: (app["env"]?.arrayValue ?? []).map { ($0["name"]?.stringValue ?? "", $0["value"]?.stringValue ?? "") })
        #expect(env["SkrClientKID"] == "secure-processor-key")
        #expect(env["SkrClientAKVEndpoint"] == "cwo-demo-vault.vault.azure.net")
        #expect(env["SkrClientMAAEndpoint"] == "sharedeus.eus.attest.azure.net")
        #expect(state.serviceAccount?[path: ["metadata", "annotations", "azure.workload.identity/client-id"]] == "00000000-1111-2222-3333-444444444444")

        // During a rollout both hashes are allowed, the current one first.
        #expect(state.allowedHashes == [state.policy.hash, "0ld"])
        let text = try #require(state.configMap?[path: ["data", "release-policy.json"]]?.stringValue)
        let policy = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        let authorities = try #require(policy["anyOf"]?.arrayValue)
        #expect(authorities.count == 2)
        for (authority, hash) in zip(authorities, [state.policy.hash, "0ld"]) {
            #expect(authority["authority"] == "https://sharedeus.eus.attest.azure.net")
            let claims = Dictionary(uniqueKeysWithValues: (authority["allOf"]?.arrayValue ?? []).map { ($0["claim"]?.stringValue ?? "", $0["equals"]) })
            #expect(claims == ["x-ms-attestation-type": "sevsnpvm", "x-ms-compliance-status": "azure-signed-katacc-uvm",
                               "x-ms-sevsnpvm-is-debuggable": "false", "x-ms-sevsnpvm-hostdata": .string(hash)])
        }
        #expect(state.configMap?[path: ["data", "apply.sh"]]?.stringValue?.contains("az keyvault key create --id https://cwo-demo-vault.vault.azure.net/keys/secure-processor-key") == true)
    }

    /// Workloads the schema accepts but a confidential pod cannot be, each with its field.
    static let invalid: [(String, [String: JSONValue], String)] = {
        let app: JSONValue = ["name": "app", "image": "nginx:1.27"]
        func pod(_ extra: [String: JSONValue], container: JSONValue = app) -> JSONValue {
            var spec: [String: JSONValue] = ["containers": [container]]
            spec.merge(extra) { $1 }
            return ["spec": .object(spec)]
        }
        return [
            ("subPath mount", ["template": pod([:], container: ["name": "app", "image": "x:1", "volumeMounts": [["name": "v", "mountPath": "/a", "subPath": "b"]]])], "spec.template.spec.containers[0].volumeMounts[0].subPath"),
            ("shared PID namespace", ["template": pod(["shareProcessNamespace": true])], "spec.template.spec.shareProcessNamespace"),
            ("hostPath volume", ["template": pod(["volumes": [["name": "h", "hostPath": ["path": "/etc"]]]])], "spec.template.spec.volumes[0].hostPath"),
            ("unsupported volume", ["template": pod(["volumes": [["name": "n", "nfs": ["server": "s", "path": "/"]]]])], "spec.template.spec.volumes[0].nfs"),
            ("hypervisor annotation", ["template": ["metadata": ["annotations": ["io.katacontainers.config.hypervisor.default_memory": "4096"]], "spec": ["containers": [app]]]], "spec.template.metadata.annotations[io.katacontainers.config.hypervisor.default_memory]"),
            ("policy annotation by hand", ["template": ["metadata": ["annotations": ["io.katacontainers.config.agent.policy": "x"]], "spec": ["containers": [app]]]], "spec.template.metadata.annotations[io.katacontainers.config.agent.policy]"),
            ("privileged", ["template": pod([:], container: ["name": "app", "image": "x:1", "securityContext": ["privileged": true]])], "spec.template.spec.containers[0].securityContext.privileged"),
            ("image outside allowedImages", ["policy": ["allowedImages": ["nginx:1.28"]], "template": pod([:])], "spec.template.spec.containers[0].image"),
            ("keyVault without maaEndpoint", ["keyVault": ["name": "v", "keyName": "k", "clientID": "c"], "template": pod([:])], "spec.attestation.maaEndpoint"),
            ("keyVault without attestation", ["attestation": ["enabled": false, "maaEndpoint": "a.b.c"], "keyVault": ["name": "v", "keyName": "k", "clientID": "c"], "template": pod([:])], "spec.keyVault"),
            ("keyVault name and url", ["attestation": ["maaEndpoint": "a.b.c"], "keyVault": ["name": "v", "url": "https://v.vault.azure.net", "keyName": "k", "clientID": "c"], "template": pod([:])], "spec.keyVault"),
            ("AllowAll without allowInsecure", ["policy": ["mode": "AllowAll"], "template": pod([:])], "spec.policy.mode"),
            ("Provided without configMapRef", ["policy": ["mode": "Provided"], "template": pod([:])], "spec.policy.configMapRef"),
            ("unknown policy mode", ["policy": ["mode": "Whatever"], "template": pod([:])], "spec.policy.mode"),
            ("exec command not a list", ["policy": ["exec": ["commands": ["ls"]]], "template": pod([:])], "spec.policy.exec.commands"),
            ("maaEndpoint with a path", ["attestation": ["maaEndpoint": "https://x.attest.azure.net/attest"], "template": pod([:])], "spec.attestation.maaEndpoint"),
            ("container named attestation", ["template": pod([:], container: ["name": "attestation", "image": "x:1"])], "spec.template.spec.containers[0].name"),
            ("bad env name allowed", ["policy": ["allowedEnvVars": ["BAD=NAME"]], "template": pod([:])], "spec.policy"),
        ]
    }()

    @Test(arguments: invalid)
    func invalidConfidentialSpecsNameTheirField(name: String, spec: [String: JSONValue], field: String) {
        switch DesiredState.build(workload(spec: .object(spec))) {
        case .success: Issue.record("\(name): accepted")
        case .failure(let errors):
            #expect(errors.reason == "InvalidSpec", "\(name)")
            #expect(errors.errors.contains { $0.field == field }, "\(name): \(errors)")
        }
    }

    @Test func warningsLeaveTheWorkloadValid() throws {
        let spec: JSONValue = ["template": ["spec": ["containers": [["name": "app", "image": "nginx"]]]]]
        let state = try DesiredState.build(workload(spec: spec)).get()
        #expect(state.spec.warnings.contains { $0.contains("no memory limit") })
        #expect(state.spec.warnings.contains { $0.contains("latest") })
        let policy = try #require(state.conditions.first { $0.type == "PolicyReady" })
        #expect(policy.status == .true)
        #expect(policy.message.contains("no memory limit"))
        #expect(policy.message.contains("the image entrypoint is not pinned for containers without command (only their args are): app"))
        #expect(policy.message.contains("variable names of policy.imageEnvVars and policy.allowedEnvVars may have any value"))
    }
}
