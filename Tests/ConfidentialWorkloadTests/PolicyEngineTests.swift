@testable import ConfidentialWorkload
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

    /// A CreateContainer request for one container of the workload's pod, as the runtime would send it:
    /// genpolicy's recorded request for a guest-pulled container, with this pod's names and this container's
    /// process, env and image.
    static func create(_ container: JSONValue, env: [String], id: String, base: JSONValue) -> JSONValue {
        var request = base
        let image = container["image"]?.stringValue ?? ""
        request["container_id"] = .string(id)
        request["OCI"]?["Root"]?["Path"] = .string("/run/kata-containers/\(id)/rootfs")
        request["OCI"]?["Annotations"] = [
            "io.katacontainers.pkg.oci.bundle_path": .string("/run/containerd/io.containerd.runtime.v2.task/k8s.io/\(id)"),
            "io.katacontainers.pkg.oci.container_type": "pod_container", "io.kubernetes.cri.container-type": "container",
            "io.kubernetes.cri.container-name": container["name"] ?? "", "io.kubernetes.cri.image-name": .string(image),
            "io.kubernetes.cri.sandbox-id": .string(String(repeating: "5", count: 64)),
            "io.kubernetes.cri.sandbox-name": "web-7d9c5f8b6-abcde", "io.kubernetes.cri.sandbox-namespace": .string(namespace),
        ]
        // Without `command`, the image's entrypoint runs.
        let args = (stringList(container["command"]) ?? ["/image-entrypoint"]) + (stringList(container["args"]) ?? [])
        request["OCI"]?["Process"]?["Args"] = .array(args.map { .string($0) })
        request["OCI"]?["Process"]?["Env"] = .array(env.map { .string($0) })
        request["OCI"]?["Process"]?["User"] = ["UID": 0, "GID": 0, "AdditionalGids": [0], "Username": ""]
        let mounts = (request[path: ["OCI", "Mounts"]]?.arrayValue ?? []).map { mount -> JSONValue in
            var mount = mount
            if let source = mount["source"]?.stringValue, source.contains("/shared/containers/") {
                mount["source"] = .string(source.replacingOccurrences(of: base["container_id"]?.stringValue ?? "", with: id))
            }
            return mount
        }
        request["OCI"]?["Mounts"] = .array(mounts)
        request["storages"] = [[
            "driver": "image_guest_pull", "driver_options": [], "fs_group": nil, "fstype": "overlay",
            "mount_point": .string("/run/kata-containers/\(id)/rootfs"), "options": [], "source": .string(image), "shared": false,
        ]]
        return request
    }

    /// The workload's own pod (init, app and attestation containers, Key Vault variables, probes and
    /// policy.exec): what it runs is allowed, and only that.
    @Test func theWorkloadsPodRunsAndNothingElse() async throws {
        let suite = try #require(GenpolicyConformanceTests.suite, "shared/peer/genpolicy not found: set CWO_SHARED_DIR")
        let cases = try #require(try GenpolicyConformanceTests.directories(suite).first { $0.name == "state/execprocessdeployment" }).cases
        let base = try #require(cases.first).request
        let state = try Self.build()
        let containers = (state.deployment[path: ["spec", "template", "spec", "initContainers"]]?.arrayValue ?? [])
            + (state.deployment[path: ["spec", "template", "spec", "containers"]]?.arrayValue ?? [])
        let platform = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=web-7d9c5f8b6-abcde",
                        "KUBERNETES_SERVICE_HOST=10.0.0.1", "AZURE_CLIENT_ID=0000", "EXTRA=anything"]
        var sequence: [AgentSimulator.Request] = []
        for (index, container) in containers.enumerated() {
            let env = (container["env"]?.arrayValue ?? []).compactMap { variable -> String? in
                guard let name = variable["name"]?.stringValue else { return nil }
                return "\(name)=\(variable["value"]?.stringValue ?? "from-a-secret")"
            }
            let id = String(repeating: String(index + 1), count: 64)
            sequence.append(.init(endpoint: "CreateContainerRequest", input: Self.create(container, env: platform + env, id: id, base: base)))
        }
        let app = try #require(containers.firstIndex { $0["name"] == "app" })
        let appID = String(repeating: String(app + 1), count: 64)
        let exec = { (args: [String]) -> AgentSimulator.Request in
            var request = cases[1].request
            request["container_id"] = .string(appID)
            request["process"]?["Args"] = .array(args.map { .string($0) })
            request["process"]?["Env"] = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
            request["process"]?["User"] = ["UID": 0, "GID": 0, "AdditionalGids": [0], "Username": ""]
            return .init(endpoint: "ExecProcessRequest", input: request)
        }
        sequence += [exec(["cat", "/tmp/ready"]), exec(["/bin/date"]), exec(["sh"])]
        var evil = sequence[app]
        evil.input["container_id"] = .string(String(repeating: "f", count: 64))
        let env = evil.input[path: ["OCI", "Process", "Env"]]?.arrayValue ?? []
        evil.input["OCI"]?["Process"]?["Env"] = .array(env + ["LD_PRELOAD=/x.so"])
        sequence.append(evil)

        let expected = Array(repeating: JSONValue.bool(true), count: containers.count) + [true, true, false, false]
        let results = try await AgentSimulator.run(policy: state.policy.text, sequences: [sequence], protos: suite.appendingPathComponent("protos").path)
        for engine in AgentSimulator.engines {
            #expect(results[engine]?.first == expected, "\(engine): \(containers.compactMap { $0["name"]?.stringValue }) then exec probe, policy.exec, sh, LD_PRELOAD")
        }
    }

    @Test func workloadIdentityVariablesOnlyForPodsThatUseIt() async throws {
        let suite = try #require(GenpolicyConformanceTests.suite, "shared/peer/genpolicy not found: set CWO_SHARED_DIR")
        let base = try #require(try GenpolicyConformanceTests.directories(suite).first { $0.name == "state/execprocessdeployment" }?.cases.first).request
        var spec = Self.spec
        spec["keyVault"] = nil
        spec["attestation"] = ["enabled": false]
        let state = try Self.build(spec)
        let app = try #require(state.deployment[path: ["spec", "template", "spec", "containers"]]?.arrayValue?.first { $0["name"] == "app" })
        let env = ["FOO=bar", "LANG=C", "SECRET=x"]
        let results = try await AgentSimulator.run(policy: state.policy.text, sequences: [
            [.init(endpoint: "CreateContainerRequest", input: Self.create(app, env: env, id: String(repeating: "1", count: 64), base: base))],
            [.init(endpoint: "CreateContainerRequest", input: Self.create(app, env: env + ["AZURE_CLIENT_ID=0000"], id: String(repeating: "1", count: 64), base: base))],
        ], protos: suite.appendingPathComponent("protos").path)
        #expect(results == Dictionary(uniqueKeysWithValues: AgentSimulator.engines.map { ($0, [[true], [false]]) }))
    }

    @Test func copyFileFromAgentsBeforeThePreprocessedRequest() async throws {
        let state = try Self.build()
        let copied = "/run/kata-containers/shared/containers/\(String(repeating: "a", count: 64))-0123456789abcdef-resolv.conf"
        let results = try await AgentSimulator.verdicts(policy: state.policy.text, [
            .init(endpoint: "CopyFileRequest", input: ["path": .string(copied), "file_mode": 0o100644, "data": []]),
            .init(endpoint: "CopyFileRequest", input: ["path": .string(copied), "file_mode": 0o120777, "data": []]),
            .init(endpoint: "CopyFileRequest", input: ["path": "/etc/passwd", "file_mode": 0o100644, "data": []]),
        ])
        #expect(results == Dictionary(uniqueKeysWithValues: AgentSimulator.engines.map { ($0, [true, false, false]) }))
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
                // CoCo: the policy inside initdata, read as the guest reads it (base64, gunzip, TOML).
                if let initData = document[path: ["spec", "template", "metadata", "annotations", InitData.currentAnnotation]]?.stringValue {
                    let script = "import base64, gzip, sys, tomllib; print(tomllib.loads(gzip.decompress(base64.b64decode(sys.argv[1])).decode())['data']['policy.rego'], end='')"
                    policies.append(try await runCommand(["python3", "-c", script, initData]))
                }
            }
        }
        #expect(policies.count > 3, "the golden files' policies were not all found: \(policies.count)")
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
