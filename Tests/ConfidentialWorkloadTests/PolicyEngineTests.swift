import ConfidentialWorkload
import Foundation
import KubernetesClient
import Testing
import TestSupport

/// The generated policy read by both engines the agents embed (regorus 0.2.8 and 0.9). What it allows and
/// denies in CreateContainer, Exec and the other requests is proven by GenpolicyConformanceTests and
/// PolicyMutationTests on real requests.
@Suite("Agent policy evaluated by real Rego engines")
struct PolicyEngineTests {
    static let namespace = "prod"

    static let spec: JSONValue = [
        "attestation": ["maaEndpoint": "sharedeus.eus.attest.azure.net"],
        "keyVault": ["name": "vault", "keyName": "k", "clientID": "0000"],
        "policy": ["allowedEnvVars": ["EXTRA"], "exec": ["commands": [["/bin/date"]]]],
        "template": ["spec": [
            "initContainers": [["name": "setup", "image": "busybox:1.36"]],
            "containers": [[
                "name": "app", "image": "nginx:1.27", "command": ["/app"], "args": ["--port=8080"],
                "env": [
                    ["name": "FOO", "value": "bar"], ["name": "LANG", "value": "C"],
                    ["name": "SECRET", "valueFrom": ["secretKeyRef": ["name": "s", "key": "k"]]],
                ],
                "readinessProbe": ["exec": ["command": ["cat", "/tmp/ready"]]],
                "resources": ["limits": ["memory": "256Mi"]],
            ]],
        ]],
    ]

    static func build(_ spec: JSONValue = spec, context: BuildContext = BuildContext()) throws -> DesiredState {
        try DesiredState.build(workload("web", spec: spec, namespace: namespace), context: context).get()
    }

    @Test func logsCanBeTurnedOff() async throws {
        var spec = Self.spec
        spec["policy"] = ["logs": false]
        let state = try Self.build(spec)
        let results = try await AgentSimulator.verdicts(policy: state.policy.text, [.init(endpoint: "ReadStreamRequest", input: ["container_id": "c", "exec_id": "c", "len": 1])])
        #expect(results == Dictionary(uniqueKeysWithValues: AgentSimulator.engines.map { ($0, [false]) }))
    }

    @Test func allowAllAllowsEverythingAndProvidedIsUsedVerbatim() async throws {
        var spec = Self.spec
        spec["policy"] = ["mode": "AllowAll", "allowInsecure": true]
        let allowAll = try Self.build(spec)
        #expect(allowAll.policy.mode == .allowAll)
        let results = try await AgentSimulator.verdicts(policy: allowAll.policy.text, [
            .init(endpoint: "CreateContainerRequest", input: ["OCI": ["Process": ["Args": ["/miner"]]]]),
            .init(endpoint: "ExecProcessRequest", input: ["process": ["Args": ["sh"]]]), .init(endpoint: "WriteStreamRequest", input: [:]),
        ])
        #expect(results == Dictionary(uniqueKeysWithValues: AgentSimulator.engines.map { ($0, [true, true, true]) }))
        #expect(allowAll.conditions.first?.reason == "AllowAllInsecure")

        let provided = "package agent_policy\n\ndefault CreateContainerRequest := false\n"
        spec["policy"] = ["mode": "Provided", "configMapRef": ["name": "p", "key": "policy.rego"]]
        for content in [provided, Data(provided.utf8).base64EncodedString()] {
            let state = try Self.build(spec, context: BuildContext(providedPolicy: content))
            #expect(state.policy.text == provided)
            #expect(state.policy.hash == (try await sha256sum(provided)))
            #expect(state.deployment[path: ["spec", "template", "metadata", "annotations", "io.katacontainers.config.agent.policy"]]?.stringValue
                == Data(provided.utf8).base64EncodedString())
        }
    }

    @Test func everyGoldenAndGeneratedPolicyLoadsInBothEngines() async throws {
        // A syntax an agent's regorus rejects would make every request an error; both engines must answer booleans.
        let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")
        var policies = [try Self.build().policy.text]
        for file in try FileManager.default.contentsOfDirectory(atPath: golden.path).sorted() {
            let text = try String(contentsOf: golden.appendingPathComponent(file), encoding: .utf8)
            for document in try YAMLDocuments.parse(text) {
                if let annotation = document[path: ["spec", "template", "metadata", "annotations", AgentPolicy.annotationKey]]?.stringValue,
                   let data = Data(base64Encoded: annotation), let policy = String(data: data, encoding: .utf8) {
                    policies.append(policy)
                }
            }
        }
        #expect(policies.count > 1, "no policy found in the golden files")
        for policy in policies {
            let results = try await AgentSimulator.verdicts(policy: policy, [
                .init(endpoint: "AllowRequestsFailingPolicy", input: [:]), .init(endpoint: "StartContainerRequest", input: [:]),
                .init(endpoint: "VolumeStatsRequest", input: [:]),
            ])
            #expect(results == Dictionary(uniqueKeysWithValues: AgentSimulator.engines.map { ($0, [false, true, false]) }))
        }
    }
}

/// SHA-256 by an independent implementation (coreutils), as the AKS docs compute HOST_DATA.
func sha256sum(_ text: String) async throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("cwo-hash-\(UUID().uuidString)").path
    try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    defer { try? FileManager.default.removeItem(atPath: path) }
    return String(try await runCommand(["sha256sum", path]).prefix(64))
}
