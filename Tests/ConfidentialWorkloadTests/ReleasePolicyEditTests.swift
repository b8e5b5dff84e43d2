@testable import ConfidentialWorkload
import KubernetesClient
import Testing

@Suite("Release policy edits")
struct ReleasePolicyEditTests {
    static let foreign: JSONValue = [
        "authority": "https://other.attest.azure.net",
        "allOf": [["claim": "x-ms-sevsnpvm-hostdata", "equals": "ffff"], ["claim": "x-ms-attestation-type", "equals": "sevsnpvm"]],
    ]

    @Test func addingKeepsEntriesCwoDidNotWriteAndIsIdempotent() {
        let start: JSONValue = ["version": "1.0.0", "anyOf": [Self.foreign]]
        let once = ReleasePolicyEdit.edited(start, adding: ["aa", "bb"], removing: [], maaEndpoint: "maa.example")
        #expect(once["anyOf"]?.arrayValue?.first == Self.foreign)
        #expect(ReleasePolicyEdit.hashes(in: once) == ["ffff", "aa", "bb"])
        // The entries cwo adds are exactly what Unmanaged mode publishes for the same hashes.
        #expect(Array(once["anyOf"]?.arrayValue?.dropFirst() ?? []) == KeyVaultBuilder.releasePolicy(maaEndpoint: "maa.example", hashes: ["aa", "bb"])["anyOf"]?.arrayValue)
        #expect(ReleasePolicyEdit.edited(once, adding: ["aa", "bb"], removing: [], maaEndpoint: "maa.example") == once)
    }

    @Test func removingDropsOnlyTheEntriesPinningThoseHashes() {
        let start = ReleasePolicyEdit.edited(["version": "1.0.0", "anyOf": [Self.foreign]], adding: ["aa", "bb"], removing: [], maaEndpoint: "maa.example")
        let edited = ReleasePolicyEdit.edited(start, adding: ["bb"], removing: ["aa"], maaEndpoint: "maa.example")
        #expect(ReleasePolicyEdit.hashes(in: edited) == ["ffff", "bb"])
        #expect(edited["version"] == "1.0.0")
        // A hash being removed is never added back in the same edit.
        #expect(ReleasePolicyEdit.hashes(in: ReleasePolicyEdit.edited(start, adding: ["aa"], removing: ["aa"], maaEndpoint: "maa.example")) == ["ffff", "bb"])
    }

    @Test func aHashUnderAnotherAuthorityIsNotTakenAsAllowed() {
        let start: JSONValue = ["version": "1.0.0", "anyOf": [Self.foreign]]
        let edited = ReleasePolicyEdit.edited(start, adding: ["ffff"], removing: [], maaEndpoint: "maa.example")
        #expect(edited["anyOf"]?.arrayValue?.count == 2)
        #expect(edited["anyOf"]?.arrayValue?.last?["authority"] == "https://maa.example")
    }

    @Test func aMissingPolicyStartsEmpty() {
        let edited = ReleasePolicyEdit.edited(nil, adding: ["aa"], removing: [], maaEndpoint: "maa.example")
        #expect(edited == KeyVaultBuilder.releasePolicy(maaEndpoint: "maa.example", hashes: ["aa"]))
        #expect(ReleasePolicyEdit.edited(nil, adding: [], removing: ["aa"], maaEndpoint: "maa.example")["anyOf"] == [])
    }

    @Test func managedSettingsAreParsed() throws {
        let spec: JSONValue = [
            "attestation": ["maaEndpoint": "sharedeus.eus.attest.azure.net"],
            "keyVault": ["url": "https://localhost:8443/", "keyName": "k", "clientID": "c", "releasePolicy": "Managed", "create": true],
            "template": ["spec": ["containers": [["name": "app", "image": "nginx:1.27"]]]],
        ]
        let parsed = try WorkloadSpec.parse(workload(spec: spec)).get()
        let keyVault = try #require(parsed.keyVault)
        #expect(keyVault.releasePolicy == .managed)
        #expect(keyVault.create)
        #expect(keyVault.url == "https://localhost:8443")
        #expect(keyVault.keyID == "https://localhost:8443/keys/k")
        var unmanaged = spec
        unmanaged["keyVault"] = ["name": "v", "keyName": "k", "clientID": "c"]
        #expect(try WorkloadSpec.parse(workload(spec: unmanaged)).get().keyVault?.releasePolicy == .unmanaged)
    }
}
