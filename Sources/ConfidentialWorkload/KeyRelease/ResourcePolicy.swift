#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import KubernetesClient

/// The Trustee KBS resource policy cwo composes for one KBS: each workload that names the KBS may
/// receive its listed resources, and only with an attestation token whose `init_data` claim is one of
/// the initdata digests currently allowed for that workload (the new one during a rollout, and the old
/// ones until their pods are gone).
///
/// The policy is evaluated by the KBS with regorus on the token's claims (`input`, EAR: the TEE's
/// evidence under `submods.cpu0["ear.veraison.annotated-evidence"]`) and the request (`data`: the
/// resource path, as "repo/type/tag" or a list of the three, and the plugin). It loads in regorus 0.2.8
/// and in 0.9 with Rego v1 defaults.
public enum ResourcePolicy {
    /// What one workload is granted.
    public struct Grant: Sendable, Hashable {
        /// `namespace/name`, for the reader of the policy.
        public var workload: String
        /// repository/type/tag
        public var paths: [String]
        public var tee: TEE
        /// Lowercase hex initdata digests.
        public var digests: [String]

        public init(workload: String, paths: [String], tee: TEE, digests: [String]) {
            self.workload = workload
            self.paths = paths
            self.tee = tee
            self.digests = digests
        }

        /// The digests as the token's `init_data` claim states them for this TEE.
        var claims: [String] {
            digests.map { tee == .azSNPvTPM ? Data(InitData.bytes(hex: $0)).base64EncodedString() : $0 }
        }
    }

    /// The Rego text for these grants: the same grants in any order give the same text.
    public static func compose(_ grants: [Grant]) -> String {
        let entries = grants.filter { !$0.paths.isEmpty && !$0.digests.isEmpty && $0.tee != .none }
            .sorted { $0.workload < $1.workload }
            .map { grant -> JSONValue in
                [
                    "workload": .string(grant.workload),
                    "paths": .array(grant.paths.sorted().map { .string($0) }),
                    "tee": .string(grant.tee.rawValue),
                    "init_data": .array(grant.claims.sorted().map { .string($0) }),
                ]
            }
        var text = """
            # Written by cwo (the Confidential Workload Operator) from the ConfidentialWorkloads that name this
            # KBS. A resource is released only to a pod whose measured initdata is one its workload allows.
            package policy

            import future.keywords.if

            default allow := false

            grants := [

            """
        text += entries.map { "  " + $0.compactJSON }.joined(separator: ",\n")
        text += """

            ]

            requested := data["resource-path"] if is_string(data["resource-path"])

            requested := concat("/", data["resource-path"]) if is_array(data["resource-path"])

            resource_request if data.plugin == "resource"

            resource_request if not data.plugin

            allow if {
              resource_request
              grant := grants[_]
              grant.paths[_] == requested
              grant.init_data[_] == input.submods.cpu0["ear.veraison.annotated-evidence"][grant.tee].init_data
            }

            """
        return text
    }
}

extension InitData {
    /// The bytes of a lowercase or uppercase hex string (invalid pairs are skipped).
    static func bytes(hex: String) -> [UInt8] {
        var result: [UInt8] = []
        var iterator = hex.utf8.makeIterator()
        while let high = iterator.next(), let low = iterator.next() {
            guard let h = nibble(high), let l = nibble(low) else { continue }
            result.append(h << 4 | l)
        }
        return result
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
