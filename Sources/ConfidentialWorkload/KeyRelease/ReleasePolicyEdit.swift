import AzureKeyVault
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import KubernetesClient

/// Edits a Key Vault release policy by policy hash, leaving every entry cwo did not write alone: a key
/// shared with other workloads or with hand-written conditions keeps them.
public enum ReleasePolicyEdit {
    public static let hostDataClaim = "x-ms-sevsnpvm-hostdata"

    /// The policy hashes `policy` releases to, under any authority.
    public static func hashes(in policy: JSONValue?) -> Set<String> {
        Set((policy?["anyOf"]?.arrayValue ?? []).flatMap(hashes(of:)))
    }

    /// The hashes one `anyOf` entry pins (its `allOf` conditions on the host-data claim).
    static func hashes(of entry: JSONValue) -> [String] {
        (entry["allOf"]?.arrayValue ?? []).compactMap { condition in
            condition["claim"]?.stringValue == hostDataClaim ? condition["equals"]?.stringValue : nil
        }
    }

    /// `policy` with an entry for each of `adding` it lacks (under `https://<maaEndpoint>`) and without
    /// the entries that pin one of `removing`. A missing or unreadable policy starts empty.
    public static func edited(_ policy: JSONValue?, adding: [String], removing: Set<String>, maaEndpoint: String) -> JSONValue {
        var document = policy?.objectValue ?? [:]
        let authority = "https://\(maaEndpoint)"
        var entries = (policy?["anyOf"]?.arrayValue ?? []).filter { entry in
            !hashes(of: entry).contains { removing.contains($0) }
        }
        let present = Set(entries.filter { $0["authority"]?.stringValue == authority }.flatMap(hashes(of:)))
        let missing = adding.filter { !present.contains($0) && !removing.contains($0) }
        entries += KeyVaultBuilder.releasePolicy(maaEndpoint: maaEndpoint, hashes: missing)["anyOf"]?.arrayValue ?? []
        document["anyOf"] = .array(entries)
        if document["version"] == nil { document["version"] = "1.0.0" }
        return .object(document)
    }
}

extension KeyReleasePolicy {
    /// A release policy document, as compact JSON with sorted keys.
    init(json: JSONValue) {
        self.init(policy: Data(CanonicalJSON.compact(json).utf8))
    }
}
