import Crypto
import Foundation
import KubernetesClient

/// An agent policy ready for the pod: its text, the annotation value and the hash the VM measures.
public struct AgentPolicy: Sendable, Hashable {
    public var mode: PolicySettings.Mode
    /// The Rego text, exactly as measured.
    public var text: String
    /// Lowercase hex SHA-256 of `text`: the SEV-SNP HOST_DATA (MAA claim `x-ms-sevsnpvm-hostdata`).
    public var hash: String
    /// What the agent does not pin for this workload, said out loud in PolicyReady.
    public var limits: [String] = []

    public init(mode: PolicySettings.Mode, text: String, limits: [String] = []) {
        self.mode = mode
        self.text = text
        self.hash = Self.sha256Hex(text)
        self.limits = limits
    }

    /// `io.katacontainers.config.agent.policy`: standard base64, padded, of the UTF-8 text.
    public var annotation: String { Data(text.utf8).base64EncodedString() }

    /// Lowercase hex SHA-256 of the UTF-8 text.
    static func sha256Hex(_ text: String) -> String {
        SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    public static let annotationKey = "io.katacontainers.config.agent.policy"
    public static let hashAnnotationKey = "cwo.dev/policy-hash"
}

/// Generates the agent policy of a final pod template (after cwo added everything it adds).
public enum PolicyBuilder {
    /// The runtime's default capabilities (containerd's defaults, which Kata passes on).
    static let defaultCapabilities = [
        "CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_MKNOD",
        "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT",
    ]

    /// Variables the platform injects, as regular expressions over `NAME=value`.
    static let platformEnvRegex = [
        #"^HOSTNAME=[A-Za-z0-9_.-]+$"#,
        // Service links (kubelet): FOO_SERVICE_HOST, FOO_SERVICE_PORT[_NAME], FOO_PORT, FOO_PORT_80_TCP[_PROTO|_PORT|_ADDR].
        #"^[A-Z0-9_]+_SERVICE_HOST=[0-9A-Fa-f.:]+$"#,
        #"^[A-Z0-9_]+_SERVICE_PORT(_[A-Z0-9_]+)?=[0-9]{1,5}$"#,
        #"^[A-Z0-9_]+_PORT=(tcp|udp|sctp)://[0-9A-Fa-f.:\[\]]+:[0-9]{1,5}$"#,
        #"^[A-Z0-9_]+_PORT_[0-9]{1,5}_(TCP|UDP|SCTP)=(tcp|udp|sctp)://[0-9A-Fa-f.:\[\]]+:[0-9]{1,5}$"#,
        #"^[A-Z0-9_]+_PORT_[0-9]{1,5}_(TCP|UDP|SCTP)_PROTO=(tcp|udp|sctp)$"#,
        #"^[A-Z0-9_]+_PORT_[0-9]{1,5}_(TCP|UDP|SCTP)_PORT=[0-9]{1,5}$"#,
        #"^[A-Z0-9_]+_PORT_[0-9]{1,5}_(TCP|UDP|SCTP)_ADDR=[0-9A-Fa-f.:]+$"#,
    ]

    /// What the workload-identity webhook injects (only for pods that use it).
    static let workloadIdentityEnvRegex = [
        #"^AZURE_CLIENT_ID=[A-Fa-f0-9-]*$"#,
        #"^AZURE_TENANT_ID=[A-Fa-f0-9-]*$"#,
        #"^AZURE_FEDERATED_TOKEN_FILE=/var/run/secrets/azure/(tokens/azure-identity-token|wi/token/azure-identity-token)$"#,
        #"^AZURE_AUTHORITY_HOST=https://login\.microsoftonline\.com/$"#,
    ]

    public static let pauseCommand: [String] = ["/pause"]

    public static func generate(template: JSONValue, namespace: String, settings: PolicySettings, workloadIdentity: Bool) -> AgentPolicy {
        let podSpec = template["spec"] ?? [:]
        var containers: [JSONValue] = [["kind": "sandbox", "name": "", "command": .array(pauseCommand.map { .string($0) })]]
        var execCommands: [[String]] = []
        var unpinnedArguments: [String] = []
        for container in (podSpec["initContainers"]?.arrayValue ?? []) + (podSpec["containers"]?.arrayValue ?? []) {
            let name = container["name"]?.stringValue ?? ""
            let command = container["command"]?.arrayValue?.compactMap(\.stringValue)
            let args = container["args"]?.arrayValue?.compactMap(\.stringValue) ?? []
            if command == nil { unpinnedArguments.append(name) }
            var literals: [String] = []
            var fromSources: [String] = []
            var names: [String] = []
            for variable in container["env"]?.arrayValue ?? [] {
                guard let variableName = variable["name"]?.stringValue else { continue }
                names.append(variableName)
                if let value = variable["valueFrom"], !value.isNull {
                    fromSources.append(variableName)
                } else {
                    literals.append("\(variableName)=\(variable["value"]?.stringValue ?? "")")
                }
            }
            let privileged = container[path: ["securityContext", "privileged"]]?.boolValue ?? false
            let added = (container[path: ["securityContext", "capabilities", "add"]]?.arrayValue ?? []).compactMap(\.stringValue).map {
                $0.hasPrefix("CAP_") ? $0 : "CAP_\($0)"
            }
            containers.append([
                "kind": "container",
                "name": .string(name),
                "images": .array(imageNames(container["image"]?.stringValue ?? "").map { .string($0) }),
                "command": command.map { .array(($0 + args).map { .string($0) }) } ?? .null,
                "env": .array(literals.map { .string($0) }),
                "env_from": .array(fromSources.map { .string($0) }),
                "env_names": .array(names.map { .string($0) }),
                "privileged": .bool(privileged),
                "capabilities": .array(Array(Set(defaultCapabilities + added)).sorted().map { .string($0) }),
            ])
            for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                if let exec = container[path: [probe, "exec", "command"]]?.arrayValue?.compactMap(\.stringValue) { execCommands.append(exec) }
            }
            for hook in ["postStart", "preStop"] {
                if let exec = container[path: ["lifecycle", hook, "exec", "command"]]?.arrayValue?.compactMap(\.stringValue) {
                    execCommands.append(exec)
                }
            }
        }
        execCommands.append(contentsOf: settings.execCommands)
        var seen: Set<[String]> = []
        execCommands = execCommands.filter { seen.insert($0).inserted }

        let envNames = Array(Set(settings.allowedEnvVars + settings.imageEnvVars)).sorted()
        let data: JSONValue = [
            "namespace": .string(namespace),
            "containers": .array(containers),
            "env_names": .array(envNames.map { .string($0) }),
            "env_regex": .array((platformEnvRegex + (workloadIdentity ? workloadIdentityEnvRegex : [])).map { .string($0) }),
            "exec_commands": .array(execCommands.map { .array($0.map { .string($0) }) }),
            "logs": .bool(settings.logs),
        ]
        let text = PolicyRules.header + "\n" + PolicyRules.defaults + "\n\n" + PolicyRules.rules + "policy_data := " + CanonicalJSON.pretty(data) + "\n"
        var limits = ["image layers are not pinned (images are matched by name; pin them by digest)"]
        if !unpinnedArguments.isEmpty {
            limits.append("arguments are not pinned for containers without command: \(unpinnedArguments.joined(separator: ", "))")
        }
        return AgentPolicy(mode: .generated, text: text, limits: limits)
    }

    public static func allowAll() -> AgentPolicy {
        AgentPolicy(mode: .allowAll, text: PolicyRules.allowAll, limits: ["every agent request is allowed: the workload has no confidentiality"])
    }

    /// A policy the user supplied: Rego text, or its base64 (as `az confcom katapolicygen --print-policy` prints it).
    public static func provided(_ content: String) -> Result<AgentPolicy, SpecError> {
        let trimmed = content.trimmingCharacters(in: .whitespacesAndNewlines)
        var text = content
        if !trimmed.contains("package"), let data = Data(base64Encoded: trimmed), let decoded = String(data: data, encoding: .utf8) {
            text = decoded
        }
        guard text.contains("package agent_policy") else {
            return .failure(SpecError("spec.policy.configMapRef", "the ConfigMap value is not a Kata agent policy (no \"package agent_policy\"), as text or base64", reason: "InvalidPolicy"))
        }
        return .success(AgentPolicy(mode: .provided, text: text))
    }

    /// The names the runtime may report for an image: as written, with the implicit `:latest` tag,
    /// and in the registry-qualified form containerd uses.
    static func imageNames(_ image: String) -> [String] {
        var names = [image]
        let lastComponent = image.split(separator: "/").last.map(String.init) ?? image
        let tagged = image.contains("@") || lastComponent.contains(":") ? image : image + ":latest"
        names.append(tagged)
        let first = image.split(separator: "/").first.map(String.init) ?? ""
        let hasRegistry = image.contains("/") && (first.contains(".") || first.contains(":") || first == "localhost")
        if !hasRegistry {
            names.append("docker.io/" + (image.contains("/") ? "" : "library/") + tagged)
        }
        var seen: Set<String> = []
        return names.filter { seen.insert($0).inserted }
    }
}

/// JSON with sorted keys and two-space indentation, the same bytes on every platform (the hash depends on them).
public enum CanonicalJSON {
    public static func pretty(_ value: JSONValue, indent: String = "") -> String {
        let inner = indent + "  "
        switch value {
        case .null: return "null"
        case .bool(let flag): return flag ? "true" : "false"
        case .number(let number): return JSONValue.canonical(number)
        case .string(let text): return quote(text)
        case .array(let items):
            if items.isEmpty { return "[]" }
            return "[\n" + items.map { inner + pretty($0, indent: inner) }.joined(separator: ",\n") + "\n" + indent + "]"
        case .object(let fields):
            if fields.isEmpty { return "{}" }
            return "{\n" + fields.sorted { $0.key < $1.key }.map { inner + quote($0.key) + ": " + pretty($0.value, indent: inner) }
                .joined(separator: ",\n") + "\n" + indent + "}"
        }
    }

    /// Without whitespace: `JSONValue.serialize`, the same bytes cwo sends in request bodies.
    public static func compact(_ value: JSONValue) -> String { value.compactJSON }

    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// The Deployment cache keeps the policy annotation (~10 KB per Deployment) as a digest: the drift check
/// compares digests, and a thousand workloads cost a thousand hashes instead of ten megabytes.
public enum PolicyDigest {
    /// `spec` with the pod template's policy annotation replaced by `sha256:<hex of the annotation>`.
    public static func project(deployment spec: JSONValue?) -> JSONValue? {
        guard var spec, let value = spec[path: ["template", "metadata", "annotations", AgentPolicy.annotationKey]]?.stringValue else { return spec }
        spec["template"]?["metadata"]?["annotations"]?[AgentPolicy.annotationKey] = .string("sha256:" + AgentPolicy.sha256Hex(value))
        return spec
    }
}
