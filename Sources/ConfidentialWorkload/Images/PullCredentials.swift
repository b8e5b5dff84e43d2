#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import KubernetesClient
import Logging
import OCIRegistry

/// The registry credentials a workload's pods pull with, as the kubelet finds them: the pod template's
/// `imagePullSecrets`, then those of its service account (`default` when the template names none).
///
/// Secrets and service accounts are read with GET (cwo lists and watches neither) and kept for `ttl`,
/// so a thousand workloads of one namespace cost one read of each per `ttl`. Reading them needs the
/// opt-in `cwo-image-pull-secrets` role (manifests/rbac); without it, or when a secret is missing or is
/// not a docker config, lookups go anonymously and the problem is logged once per reading, never the
/// secret's content.
public actor PullCredentials {
    struct Cached<Value> {
        var value: Value
        var at: ContinuousClock.Instant
    }

    private let client: KubeClient
    private let ttl: Duration
    private let logger: Logger
    private var secrets: [String: Cached<PullSecrets?>] = [:]
    private var accounts: [String: Cached<[String]>] = [:]

    public init(client: KubeClient, ttl: Duration = .seconds(60), logger: Logger) {
        self.client = client
        self.ttl = ttl
        self.logger = logger
    }

    /// The pull secrets of `podSpec` in `namespace`, merged in the kubelet's order (earlier wins).
    public func secrets(podSpec: JSONValue?, namespace: String) async -> PullSecrets {
        let named = (podSpec?["imagePullSecrets"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
        let account = podSpec?["serviceAccountName"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } ?? "default"
        var merged = PullSecrets()
        var seen: Set<String> = []
        for name in named + (await accountSecrets(account, namespace: namespace)) where seen.insert(name).inserted {
            guard let secret = await secret(name, namespace: namespace) else { continue }
            merged.merge(secret)
        }
        return merged
    }

    private func accountSecrets(_ name: String, namespace: String) async -> [String] {
        let key = "\(namespace)/\(name)"
        if let cached = accounts[key], ContinuousClock.now - cached.at < ttl { return cached.value }
        var names: [String] = []
        do {
            let account: UntypedObject = try await client.get(.serviceAccounts, namespace: namespace, name: name)
            names = (account.raw["imagePullSecrets"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
        } catch let error as KubeError where error.reason == .notFound {
            // Not created yet (or cwo creates it): no pull secrets of its own.
        } catch {
            logger.info("cannot read the service account's pull secrets", metadata: ["serviceAccount": "\(key)", "error": "\(error)"])
        }
        accounts[key] = Cached(value: names, at: .now)
        return names
    }

    private func secret(_ name: String, namespace: String) async -> PullSecrets? {
        let key = "\(namespace)/\(name)"
        if let cached = secrets[key], ContinuousClock.now - cached.at < ttl { return cached.value }
        var parsed: PullSecrets?
        do {
            let secret: UntypedObject = try await client.get(.secrets, namespace: namespace, name: name)
            let data = secret.raw["data"]
            guard let encoded = data?[".dockerconfigjson"]?.stringValue ?? data?[".dockercfg"]?.stringValue,
                  let bytes = Data(base64Encoded: encoded) else {
                throw PullSecretError(message: "has no .dockerconfigjson or .dockercfg")
            }
            var secrets = PullSecrets()
            try secrets.add(secretData: Array(bytes))
            parsed = secrets
        } catch {
            // KubeError and PullSecretError messages name the object and the problem, never the data.
            logger.warning("image pull secret not used", metadata: ["secret": "\(key)", "error": "\(error)"])
        }
        secrets[key] = Cached(value: parsed, at: .now)
        return parsed
    }
}
