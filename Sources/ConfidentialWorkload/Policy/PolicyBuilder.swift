import ControllerRuntime
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import FoundationExtras
import KubernetesClient
import OCIRegistry

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
    public var annotation: String { PolicyRules.generated.base64(text) }

    /// Lowercase hex SHA-256 of the UTF-8 text (a generated policy's rules hashed once for all).
    static func sha256Hex(_ text: String) -> String {
        PolicyRules.generated.sha256Hex(text)
    }

    public static let annotationKey = "io.katacontainers.config.agent.policy"
    public static let hashAnnotationKey = "cwo.dev/policy-hash"
}

/// Generates the agent policy of a final pod template (after cwo added everything it adds).
public enum PolicyBuilder {
    /// The names a workload's pods have, as the pause container reports them in `io.kubernetes.cri.sandbox-name`.
    public enum PodNames: Sendable, Hashable {
        /// Pods of the Deployment of this name: `<name>-<pod-template-hash>-<5 characters>`.
        case deployment(String)
        /// One pod of exactly this name.
        case pod(String)
        /// Pods named by `metadata.generateName`: this prefix and a generated suffix.
        case generated(String)
        /// Any pod name (the sandbox name is then only pinned by the pod's first container).
        case any

        var pattern: String {
            switch self {
            case .deployment(let name):
                // The ReplicaSet's generateName `<name>-<hash>-` is cut at 58 characters before the 5 random ones.
                name.count + 12 <= 58 ? "^" + RuntimeFacts.escape(name) + "-[a-z0-9]{1,10}-[a-z0-9]{5}$"
                    : "^" + RuntimeFacts.escape(String(name.prefix(58))) + "[-a-z0-9]{0,12}[a-z0-9]{5}$"
            case .pod(let name): "^" + RuntimeFacts.escape(name) + "$"
            case .generated(let prefix): "^" + RuntimeFacts.escape(prefix) + "[a-z0-9]{1,10}$"
            case .any: #"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"#
            }
        }
    }

    /// The policy of a final pod template: the rules, then `policy_data` with one expectation per container
    /// (the pause container first) and the runtime's facts. `images` are the registry's facts, keyed by
    /// the image as the template writes it: those containers' process is pinned from their image config.
    public static func generate(template: JSONValue, namespace: String, settings: PolicySettings, workloadIdentity: Bool,
                                pods: PodNames = .any, images: [String: ImageFacts] = [:]) -> AgentPolicy {
        let podSpec = template["spec"] ?? [:]
        let expectation = ContainerExpectation(template: template, workloadIdentity: workloadIdentity,
                                               namespace: namespace, podName: pods.pattern, images: images,
                                               allowedEnvVars: settings.allowedEnvVars)
        let containers = (podSpec["initContainers"]?.arrayValue ?? []) + (podSpec["containers"]?.arrayValue ?? [])
        let data: [String: JSONValue] = [
            "namespace": .string(namespace),
            "sandbox_name": .string(pods.pattern),
            "share_process_namespace": .bool(podSpec["shareProcessNamespace"]?.boolValue ?? false),
            "sysctls": expectation.sysctls,
            "platform_env": expectation.platformEnv,
            "image_env_names": RuntimeFacts.strings(Array(Set(settings.imageEnvVars + settings.allowedEnvVars)).sorted()),
            "exec": .array(settings.execCommands.uniqued().map { RuntimeFacts.strings($0) }),
            "logs": .bool(settings.logs),
        ]
        let rendered = ["runtime": renderedRuntime, "containers": CanonicalJSON.member([expectation.pause] + containers.map(expectation.container))]
        let text = CanonicalJSON.text(after: PolicyRules.generated.prefix, object: data, rendered: rendered)
        return AgentPolicy(mode: .generated, text: text, limits: limits(containers, settings: settings, images: images))
    }

    /// `policy_data.runtime`, the same in every policy: written out once.
    static let renderedRuntime = CanonicalJSON.member(RuntimeFacts.policyData)

    /// What the policy cannot pin for containers whose image config cwo has not read, said in PolicyReady.
    static func limits(_ containers: [JSONValue], settings: PolicySettings, images: [String: ImageFacts]) -> [String] {
        var limits: [String] = []
        let unresolved = containers.filter { images[$0["image"]?.stringValue ?? ""] == nil }
        let unpinned = unresolved.filter { $0["command"] == nil }.compactMap { $0["name"]?.stringValue }
        if !unpinned.isEmpty {
            limits.append("the image entrypoint is not pinned for containers without command (only their args are): \(unpinned.joined(separator: ", "))")
        }
        let names = Set((unresolved.isEmpty ? [] : settings.imageEnvVars) + settings.allowedEnvVars)
        if !names.isEmpty {
            let fields = unresolved.isEmpty ? "policy.allowedEnvVars" : "policy.imageEnvVars and policy.allowedEnvVars"
            limits.append("the \(names.count) variable names of \(fields) may have any value")
        }
        // A user name, or a bare UID's group, is in the image's /etc/passwd, which cwo does not read.
        let guessed = containers.compactMap { container -> String? in
            guard let user = images[container["image"]?.stringValue ?? ""]?.user, !user.isEmpty, !user.contains(":") || ImageUser(user) == nil
            else { return nil }
            return "\(container["name"]?.stringValue ?? "") (\(user))"
        }
        if !guessed.isEmpty {
            limits.append("image users are assumed UID 0 when named and GID 0 without a group, as cwo does not read /etc/passwd: \(guessed.joined(separator: ", "))")
        }
        return limits
    }

    public static func allowAll() -> AgentPolicy {
        AgentPolicy(mode: .allowAll, text: PolicyRules.allowAll, limits: ["every agent request is allowed: the workload has no confidentiality"])
    }

    /// A policy the user supplied: Rego text, or its base64 (as `az confcom katapolicygen --print-policy` prints it).
    public static func provided(_ content: String) -> Result<AgentPolicy, SpecError> {
        let trimmed = content.trimmingWhitespace()
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
    /// and in the registry-qualified form containerd uses. (Read with index searches, not splits: this
    /// runs for every container of every build, and the splits' arrays were 5 % of a build.)
    static func imageNames(_ image: String) -> [String] {
        var names = [image]
        func add(_ name: String) { if !names.contains(name) { names.append(name) } }
        let at = image.utf8.firstIndex(of: UInt8(ascii: "@"))
        // containerd reports `repo:tag@sha256:...` as `repo@sha256:...`.
        if let at {
            let repository = image[..<at]
            if let colon = lastComponent(repository).utf8.lastIndex(of: UInt8(ascii: ":")) {
                imageNames(String(repository[..<colon]) + image[at...]).forEach(add)
                return names
            }
        }
        let tagged = at != nil || lastComponent(image[...]).utf8.contains(UInt8(ascii: ":")) ? image : image + ":latest"
        add(tagged)
        let hasSlash = image.utf8.contains(UInt8(ascii: "/"))
        let first = firstComponent(image[...])
        let hasRegistry = hasSlash && (first.utf8.contains(UInt8(ascii: ".")) || first.utf8.contains(UInt8(ascii: ":")) || first == "localhost")
        if !hasRegistry {
            add("docker.io/" + (hasSlash ? "" : "library/") + tagged)
        }
        return names
    }

    /// The last non-empty `/`-separated component of `path` (empty when it has none).
    private static func lastComponent(_ path: Substring) -> Substring {
        var end = path.endIndex
        while end > path.startIndex, path.utf8[path.utf8.index(before: end)] == UInt8(ascii: "/") { end = path.utf8.index(before: end) }
        let trimmed = path[..<end]
        guard let slash = trimmed.utf8.lastIndex(of: UInt8(ascii: "/")) else { return trimmed }
        return trimmed[trimmed.utf8.index(after: slash)...]
    }

    /// The first non-empty `/`-separated component of `path` (empty when it has none).
    private static func firstComponent(_ path: Substring) -> Substring {
        let start = path.utf8.firstIndex { $0 != UInt8(ascii: "/") } ?? path.endIndex
        let rest = path[start...]
        return rest[..<(rest.utf8.firstIndex(of: UInt8(ascii: "/")) ?? rest.endIndex)]
    }
}

extension Array where Element: Hashable {
    func uniqued() -> [Element] {
        var seen: Set<Element> = []
        return filter { seen.insert($0).inserted }
    }
}

/// The Deployment cache keeps the policy annotation (~50 KB per Deployment) as a digest: the drift check
/// compares digests, and a thousand workloads cost a thousand hashes instead of fifty megabytes.
public enum PolicyDigest {
    /// `spec` with the pod template's policy annotation replaced by `sha256:<hex of the annotation>`.
    public static func project(deployment spec: JSONValue?) -> JSONValue? {
        guard var spec, let value = spec[path: ["template", "metadata", "annotations", AgentPolicy.annotationKey]]?.stringValue else { return spec }
        spec["template"]?["metadata"]?["annotations"]?[AgentPolicy.annotationKey] = .string("sha256:" + PolicyRules.generated.sha256HexOfEncoded(value))
        return spec
    }

    /// An object (a Deployment, or any other, which it returns as it is) with its spec projected.
    @Sendable public static func project(object: JSONValue) -> JSONValue {
        guard object[path: ["spec", "template", "metadata", "annotations", AgentPolicy.annotationKey]] != nil else { return object }
        var projected = object
        projected["spec"] = project(deployment: object["spec"])
        return projected
    }
}
