import ConfidentialWorkload
import Foundation
import KubernetesClient
import Testing
import TestSupport

/// The generated policy's meaning, proven with regorus (the engine inside the Kata agent) on requests
/// shaped like the ones the agent evaluates (its ttRPC messages as JSON).
@Suite("Agent policy evaluated by a real Rego engine")
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

    // MARK: request documents, as the agent serializes them

    static func createContainer(
        name: String?, image: String?, args: [String], env: [String], type: String = "container", namespace: String = namespace,
        capabilities: [String]? = nil
    ) -> JSONValue {
        var annotations: [String: JSONValue] = [
            "io.kubernetes.cri.container-type": .string(type),
            "io.katacontainers.pkg.oci.container_type": .string(type == "sandbox" ? "pod_sandbox" : "pod_container"),
            "io.kubernetes.cri.sandbox-namespace": .string(namespace),
            "io.kubernetes.cri.sandbox-name": "web-7d9c-abcde",
            "io.kubernetes.cri.sandbox-id": .string(String(repeating: "a", count: 64)),
        ]
        if let name { annotations["io.kubernetes.cri.container-name"] = .string(name) }
        if let image { annotations["io.kubernetes.cri.image-name"] = .string(image) }
        let caps: [String] = capabilities ?? ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID"]
        let capabilityList = JSONValue.array(caps.map { .string($0) })
        return [
            "container_id": .string(String(repeating: "c", count: 64)), "exec_id": .string(String(repeating: "c", count: 64)),
            "string_user": nil, "devices": [], "storages": [], "sandbox_pidns": false, "shared_mounts": [],
            "OCI": [
                "Version": "1.1.0", "Hostname": "web-7d9c-abcde", "Hooks": nil, "Annotations": .object(annotations),
                "Process": [
                    "Terminal": false, "User": ["UID": 0, "GID": 0, "AdditionalGids": [0], "Username": ""],
                    "Args": .array(args.map { .string($0) }), "Env": .array(env.map { .string($0) }), "Cwd": "/",
                    "Capabilities": ["Ambient": [], "Bounding": capabilityList, "Effective": capabilityList, "Inheritable": [], "Permitted": capabilityList],
                    "NoNewPrivileges": false,
                ],
                "Root": ["Path": "/run/kata-containers/shared/containers/c/rootfs", "Readonly": false],
                "Mounts": [], "Linux": ["Namespaces": [["Type": "ipc", "Path": ""], ["Type": "mount", "Path": ""]]],
            ],
        ]
    }

    static let platformEnv = [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=web-7d9c-abcde",
        "KUBERNETES_SERVICE_HOST=10.0.0.1", "KUBERNETES_SERVICE_PORT=443", "KUBERNETES_SERVICE_PORT_HTTPS=443",
        "KUBERNETES_PORT=tcp://10.0.0.1:443", "KUBERNETES_PORT_443_TCP=tcp://10.0.0.1:443", "KUBERNETES_PORT_443_TCP_PROTO=tcp",
        "KUBERNETES_PORT_443_TCP_PORT=443", "KUBERNETES_PORT_443_TCP_ADDR=10.0.0.1", "NGINX_VERSION=1.27.0",
        "AZURE_CLIENT_ID=0000", "AZURE_TENANT_ID=72f988bf-86f1-41af-91ab-2d7cd011db47",
        "AZURE_FEDERATED_TOKEN_FILE=/var/run/secrets/azure/tokens/azure-identity-token", "AZURE_AUTHORITY_HOST=https://login.microsoftonline.com/",
    ]
    static let appEnv = platformEnv + ["FOO=bar", "LANG=C", "SECRET=s3cr3t", "EXTRA=anything",
        "SkrClientKID=k", "SkrClientAKVEndpoint=vault.vault.azure.net", "SkrClientMAAEndpoint=sharedeus.eus.attest.azure.net"]

    static func app(image: String = "nginx:1.27", name: String = "app", args: [String] = ["/app", "--port=8080"], env: [String] = appEnv,
        namespace: String = namespace, capabilities: [String]? = nil) -> JSONValue {
        createContainer(name: name, image: image, args: args, env: env, namespace: namespace, capabilities: capabilities)
    }

    static func exec(_ args: [String]) -> JSONValue {
        ["container_id": "c", "exec_id": "e", "string_user": nil, "process": ["Terminal": false, "Args": .array(args.map { .string($0) }), "Env": [], "Cwd": "/"]]
    }

    static let sandbox: JSONValue = [
        "hostname": "", "dns": [], "sandbox_pidns": false, "sandbox_id": "s", "guest_hook_path": "", "kernel_modules": [],
        "storages": [["driver": "ephemeral", "source": "shm", "fstype": "tmpfs", "mount_point": "/run/kata-containers/sandbox/shm"]],
    ]

    // MARK: cases

    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var endpoint: String
        var input: JSONValue
        var allowed: Bool
        var description: String { "\(allowed ? "allow" : "deny"): \(name)" }
    }

    static func attestationArgs(_ state: DesiredState) -> [String] {
        state.deployment[path: ["spec", "template", "spec", "initContainers"]]?.arrayValue?.first { $0["name"] == "attestation" }?["env"]?.arrayValue?
            .compactMap { variable in variable["name"]?.stringValue.map { "\($0)=\(variable["value"]?.stringValue ?? "")" } } ?? []
    }

    static func cases(_ state: DesiredState) -> [Case] {
        [
            Case(name: "the pause container", endpoint: "CreateContainerRequest",
                 input: createContainer(name: nil, image: nil, args: ["/pause"], env: ["PATH=/usr/bin"], type: "sandbox"), allowed: true),
            Case(name: "the app as declared", endpoint: "CreateContainerRequest", input: app(), allowed: true),
            Case(name: "the app under its registry-qualified image name", endpoint: "CreateContainerRequest", input: app(image: "docker.io/library/nginx:1.27"), allowed: true),
            Case(name: "an init container without command (arguments not pinned)", endpoint: "CreateContainerRequest",
                 input: createContainer(name: "setup", image: "busybox:1.36", args: ["sh", "-c", "anything"], env: platformEnv), allowed: true),
            Case(name: "the attestation container cwo added", endpoint: "CreateContainerRequest",
                 input: createContainer(name: "attestation", image: "mcr.microsoft.com/aci/skr:2.7", args: ["/skr.sh"], env: platformEnv + attestationArgs(state)), allowed: true),
            Case(name: "another image", endpoint: "CreateContainerRequest", input: app(image: "evil.io/miner:1"), allowed: false),
            Case(name: "another container name", endpoint: "CreateContainerRequest", input: app(name: "intruder"), allowed: false),
            Case(name: "other arguments", endpoint: "CreateContainerRequest", input: app(args: ["/app", "--debug"]), allowed: false),
            Case(name: "an extra variable", endpoint: "CreateContainerRequest", input: app(env: appEnv + ["EVIL=1"]), allowed: false),
            Case(name: "a loader variable from no allow-list", endpoint: "CreateContainerRequest", input: app(env: appEnv + ["LD_PRELOAD=/tmp/x.so"]), allowed: false),
            Case(name: "a declared literal with another value", endpoint: "CreateContainerRequest",
                 input: app(env: appEnv.filter { $0 != "FOO=bar" } + ["FOO=evil"]), allowed: false),
            Case(name: "a declared literal that is also an image-config name, with another value", endpoint: "CreateContainerRequest",
                 input: app(env: appEnv.filter { $0 != "LANG=C" } + ["LANG=fr_FR"]), allowed: false),
            Case(name: "a privileged container the template did not declare", endpoint: "CreateContainerRequest",
                 input: app(capabilities: ["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]), allowed: false),
            Case(name: "another namespace", endpoint: "CreateContainerRequest", input: app(namespace: "other"), allowed: false),
            Case(name: "a sandbox with the policy's shape", endpoint: "CreateSandboxRequest", input: sandbox, allowed: true),
            Case(name: "a sandbox sharing the PID namespace", endpoint: "CreateSandboxRequest", input: { var s = sandbox; s["sandbox_pidns"] = true; return s }(), allowed: false),
            Case(name: "the readiness probe's command", endpoint: "ExecProcessRequest", input: exec(["cat", "/tmp/ready"]), allowed: true),
            Case(name: "a command from policy.exec.commands", endpoint: "ExecProcessRequest", input: exec(["/bin/date"]), allowed: true),
            Case(name: "an interactive shell", endpoint: "ExecProcessRequest", input: exec(["sh"]), allowed: false),
            Case(name: "a probe command with extra arguments", endpoint: "ExecProcessRequest", input: exec(["cat", "/tmp/ready", "/etc/shadow"]), allowed: false),
            Case(name: "container logs", endpoint: "ReadStreamRequest", input: ["container_id": "c", "exec_id": "c", "len": 32768], allowed: true),
            Case(name: "stdin", endpoint: "WriteStreamRequest", input: ["container_id": "c", "exec_id": "e", "data": [108, 115]], allowed: false),
            Case(name: "closing stdin", endpoint: "CloseStdinRequest", input: ["container_id": "c", "exec_id": "e"], allowed: false),
            Case(name: "replacing the policy", endpoint: "SetPolicyRequest", input: ["policy": "package agent_policy\ndefault CreateContainerRequest := true"], allowed: false),
            Case(name: "a signal (allowed by default, as in the AKS rules)", endpoint: "SignalProcessRequest", input: ["container_id": "c", "exec_id": "", "signal": 15], allowed: true),
            Case(name: "waiting for a process", endpoint: "WaitProcessRequest", input: ["container_id": "c", "exec_id": "c"], allowed: true),
            Case(name: "a request type the policy does not name", endpoint: "GetMetricsRequest", input: [:], allowed: false),
            Case(name: "pausing a container", endpoint: "PauseContainerRequest", input: ["container_id": "c"], allowed: false),
            Case(name: "copying a mounted file into the VM", endpoint: "CopyFileRequest",
                 input: ["path": "/run/kata-containers/shared/containers/c-0123456789abcdef-hosts", "file_size": 10, "file_mode": 420, "dir_mode": 493, "uid": 0, "gid": 0, "offset": 0], allowed: true),
            Case(name: "copying a file anywhere else", endpoint: "CopyFileRequest",
                 input: ["path": "/etc/kata-opa/default-policy.rego", "file_size": 10, "file_mode": 420, "dir_mode": 493, "uid": 0, "gid": 0, "offset": 0], allowed: false),
        ]
    }

    static func evaluate(policy: String, _ queries: [(endpoint: String, input: JSONValue)]) async throws -> [JSONValue] {
        let request: JSONValue = ["policy": .string(policy), "queries": .array(queries.map { ["endpoint": .string($0.endpoint), "input": $0.input] })]
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cwo-rego-\(UUID().uuidString).json").path
        try JSONCoding.encoder.encode(request).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Rego/evaluate.py").path
        let output = try await runCommand(["python3", script, path])
        let results = try JSONDecoder().decode([JSONValue].self, from: Data(output.utf8))
        try #require(results.count == queries.count, "the engine answered \(results.count) of \(queries.count) queries: \(output)")
        return results
    }

    @Test func everyRuleAllowsWhatTheWorkloadDeclaresAndDeniesTheRest() async throws {
        let state = try Self.build()
        let cases = Self.cases(state)
        let results = try await Self.evaluate(policy: state.policy.text, cases.map { ($0.endpoint, $0.input) })
        for (test, result) in zip(cases, results) {
            #expect(result == .bool(test.allowed), "\(test): engine said \(result)")
        }
    }

    @Test func logsCanBeTurnedOff() async throws {
        var spec = Self.spec
        spec["policy"] = ["logs": false]
        let state = try Self.build(spec)
        let results = try await Self.evaluate(policy: state.policy.text, [("ReadStreamRequest", ["container_id": "c", "exec_id": "c", "len": 1])])
        #expect(results == [false])
    }

    @Test func workloadIdentityVariablesOnlyForPodsThatUseIt() async throws {
        var spec = Self.spec
        spec["keyVault"] = nil
        let state = try Self.build(spec)
        let env = Self.appEnv.filter { !$0.hasPrefix("SkrClient") }
        let results = try await Self.evaluate(policy: state.policy.text, [
            ("CreateContainerRequest", Self.app(env: env.filter { !$0.hasPrefix("AZURE_") })),
            ("CreateContainerRequest", Self.app(env: env)),
        ])
        #expect(results == [true, false])
    }

    @Test func aPrivilegedContainerIsAllowedOnlyWhenDeclaredAndPermitted() async throws {
        var spec = Self.spec
        spec["policy"] = ["allowPrivileged": true]
        spec["template"] = ["spec": ["containers": [["name": "app", "image": "nginx:1.27", "command": ["/app"], "args": ["--port=8080"], "securityContext": ["privileged": true]]]]]
        let state = try Self.build(spec)
        let env = Self.platformEnv + ["SkrClientKID=k", "SkrClientAKVEndpoint=vault.vault.azure.net", "SkrClientMAAEndpoint=sharedeus.eus.attest.azure.net"]
        let results = try await Self.evaluate(policy: state.policy.text, [
            ("CreateContainerRequest", Self.app(env: env, capabilities: ["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"])),
        ])
        #expect(results == [true])
    }

    @Test func allowAllAllowsEverythingAndProvidedIsUsedVerbatim() async throws {
        var spec = Self.spec
        spec["policy"] = ["mode": "AllowAll", "allowInsecure": true]
        let allowAll = try Self.build(spec)
        #expect(allowAll.policy.mode == .allowAll)
        let results = try await Self.evaluate(policy: allowAll.policy.text, [
            ("CreateContainerRequest", Self.app(image: "evil.io/miner:1")), ("ExecProcessRequest", Self.exec(["sh"])), ("WriteStreamRequest", [:]),
        ])
        #expect(results == [true, true, true])
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

    @Test func theGeneratedPolicyParsesInTheAgentsEngine() async throws {
        // A syntax the agent's regorus rejects would make every request an error; the engine must answer booleans.
        let state = try Self.build()
        let results = try await Self.evaluate(policy: state.policy.text, [("AllowRequestsFailingPolicy", [:]), ("StartContainerRequest", [:])])
        #expect(results == [false, true])
    }
}

/// SHA-256 by an independent implementation (coreutils), as the AKS docs compute HOST_DATA.
func sha256sum(_ text: String) async throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("cwo-hash-\(UUID().uuidString)").path
    try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    defer { try? FileManager.default.removeItem(atPath: path) }
    return String(try await runCommand(["sha256sum", path]).prefix(64))
}
