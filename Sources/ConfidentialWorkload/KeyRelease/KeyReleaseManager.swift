import AzureKeyVault
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import KubernetesClient

/// Keeps a Key Vault key's release policy in step with a workload's policy hashes
/// (`spec.keyVault.releasePolicy: Managed`).
///
/// The reconciler decides *when* (new hashes before the Deployment changes, old ones after the rollout);
/// this type does the Key Vault side and turns every failure into a `KeyReleaseBound` reason.
public final class KeyReleaseManager: Sendable {
    public struct Options: Sendable {
        /// How long a deleted workload waits for its hashes to leave the release policy before cwo gives
        /// up, removes its finalizer anyway and says what it left behind.
        public var cleanupTimeout: Duration = .seconds(300)
        /// How often a converged workload's release policy is read again, to repair outside edits.
        public var resync: Duration = .seconds(600)

        public init() {}
    }

    public static let finalizer = "cwo.dev/key-release"

    let client: KeyVaultClient?
    /// Why there is no client (cwo's pod has no workload identity).
    let unavailable: String?
    public let options: Options

    public init(client: KeyVaultClient, options: Options = Options()) {
        self.client = client
        self.unavailable = nil
        self.options = options
    }

    /// A manager that reports `reason` for every managed workload: cwo runs without an Azure identity.
    public init(unavailable reason: String, options: Options = Options()) {
        self.client = nil
        self.unavailable = reason
        self.options = options
    }

    public func shutdown() async throws {
        try await client?.shutdown()
    }

    public struct Synced: Sendable, Hashable {
        /// This workload's hashes now in the release policy.
        public var published: [String]
        public var keyVersion: String
        /// Whether Key Vault was written (created or updated).
        public var wrote: Bool
        public var created: Bool
    }

    public struct Failure: Error, Sendable, Hashable {
        public var reason: String
        public var message: String
        public var retryAfter: Duration?
    }

    /// Makes the key release to every hash in `allowed` and to none of this workload's `published`
    /// hashes that are no longer allowed. `beforeWrite` runs once before Key Vault is first changed (it
    /// adds the finalizer); an error from it is thrown, Key Vault errors are returned as a `Failure`.
    func sync(
        _ settings: KeyVaultSettings, maaEndpoint: String, allowed: [String], published: [String],
        beforeWrite: () async throws -> Void
    ) async throws -> Result<Synced, Failure> {
        guard let client else { return .failure(Failure(reason: "AzureIdentityNotConfigured", message: unavailable ?? "")) }
        let key = settings.keyID
        do {
            guard let bundle = try await client.getKey(vault: settings.url, name: settings.keyName) else {
                guard settings.create else {
                    return .failure(Failure(
                        reason: "KeyNotFound",
                        message: "key \(key) does not exist: create it (\(KeyVaultBuilder.azCommand(settings))) or set spec.keyVault.create: true"))
                }
                let policy = ReleasePolicyEdit.edited(nil, adding: allowed, removing: [], maaEndpoint: maaEndpoint)
                try await beforeWrite()
                let created = try await client.createKey(
                    vault: settings.url, name: settings.keyName,
                    parameters: KeyCreateParameters(keyType: settings.keyType, size: settings.keySize, releasePolicy: KeyReleasePolicy(json: policy)))
                return .success(Synced(published: allowed, keyVersion: created.version, wrote: true, created: true))
            }
            let current = try Self.currentPolicy(bundle, key: key)
            let removing = Set(published).subtracting(allowed)
            let wanted = ReleasePolicyEdit.edited(current, adding: allowed, removing: removing, maaEndpoint: maaEndpoint)
            if wanted == current {
                return .success(Synced(published: allowed, keyVersion: bundle.version, wrote: false, created: false))
            }
            if bundle.release_policy?.immutable == true {
                return .failure(Failure(
                    reason: "ReleasePolicyImmutable",
                    message: "the release policy of \(key) (version \(bundle.version)) is immutable, so cwo cannot allow hash \(allowed.first ?? ""): create a new key version with a mutable policy, or set spec.keyVault.releasePolicy: Unmanaged"))
            }
            if bundle.attributes?.exportable == false {
                return .failure(Failure(reason: "KeyNotExportable", message: "key \(key) (version \(bundle.version)) is not exportable, so it cannot have a release policy"))
            }
            try await beforeWrite()
            let updated = try await client.updateReleasePolicy(
                vault: settings.url, name: settings.keyName, version: bundle.version,
                policy: KeyReleasePolicy(json: wanted))
            return .success(Synced(published: allowed, keyVersion: updated.version.isEmpty ? bundle.version : updated.version, wrote: true, created: false))
        } catch let error as AzureError {
            return .failure(Self.failure(error, key: key))
        } catch let failure as Failure {
            return .failure(failure)
        }
    }

    /// Removes `hashes` from the key's release policy (a deleted workload). Succeeds when there is
    /// nothing to remove, including when the key is gone.
    func cleanup(vault: String, keyName: String, hashes: [String]) async throws -> Result<Bool, Failure> {
        guard let client else { return .failure(Failure(reason: "AzureIdentityNotConfigured", message: unavailable ?? "")) }
        guard !hashes.isEmpty else { return .success(false) }
        let key = "\(vault)/keys/\(keyName)"
        do {
            guard let bundle = try await client.getKey(vault: vault, name: keyName) else { return .success(false) }
            let current = try Self.currentPolicy(bundle, key: key)
            guard !ReleasePolicyEdit.hashes(in: current).isDisjoint(with: hashes) else { return .success(false) }
            if bundle.release_policy?.immutable == true {
                return .failure(Failure(reason: "ReleasePolicyImmutable", message: "the release policy of \(key) is immutable"))
            }
            let wanted = ReleasePolicyEdit.edited(current, adding: [], removing: Set(hashes), maaEndpoint: "")
            _ = try await client.updateReleasePolicy(
                vault: vault, name: keyName, version: bundle.version, policy: KeyReleasePolicy(json: wanted))
            return .success(true)
        } catch let error as AzureError {
            return .failure(Self.failure(error, key: key))
        } catch let failure as Failure {
            return .failure(failure)
        }
    }

    /// The key's release policy as JSON (nil when it has none).
    static func currentPolicy(_ bundle: KeyBundle, key: String) throws(Failure) -> JSONValue? {
        do {
            return try bundle.release_policy?.policy.map { try JSONParser.parse($0) }
        } catch {
            throw Failure(reason: "ReleasePolicyUnreadable", message: "the release policy of \(key) is not JSON: \(error)")
        }
    }

    static func failure(_ error: AzureError, key: String) -> Failure {
        let detail = "\(error)"
        switch error.kind {
        case .identity:
            return Failure(reason: "AzureIdentityFailed", message: "cwo could not get an access token for Key Vault: \(detail)", retryAfter: error.retryAfter)
        case .unauthorized:
            return Failure(reason: "KeyVaultUnauthorized", message: "Key Vault refused cwo's access token for \(key): \(detail)")
        case .forbidden:
            return Failure(
                reason: "KeyVaultForbidden",
                message: "cwo's identity may not change \(key) (give it the Key Vault Crypto Officer role, or Managed HSM Crypto Officer): \(detail)")
        case .conflict:
            return Failure(reason: "KeyVaultConflict", message: "Key Vault refused to change \(key): \(detail)")
        case .throttled:
            return Failure(reason: "KeyVaultThrottled", message: "Key Vault is throttling cwo: \(detail)", retryAfter: error.retryAfter)
        case .unavailable:
            return Failure(reason: "KeyVaultUnavailable", message: "Key Vault did not answer for \(key): \(detail)", retryAfter: error.retryAfter)
        case .notFound, .rejected, .decoding:
            return Failure(reason: "KeyVaultRejected", message: "Key Vault rejected a change to \(key): \(detail)")
        }
    }
}
