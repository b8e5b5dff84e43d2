@testable import ConfidentialWorkload
import Crypto
import Foundation
import KubernetesClient
import Testing

/// Hashing and encoding past a shared prefix must give exactly what hashing and encoding the whole text gives.
@Suite("Policy digests past the rules' prefix")
struct PrefixedTextTests {
    static func plainHex(_ text: String) -> String {
        SHA256.hash(data: Array(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    static func plainBase64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }

    // Prefixes of every length modulo 3 (the base64 of a prefix ends on a whole group or not), texts that
    // begin with it (followed by nothing, by one to four bytes, by non-ASCII text), and texts that do not.
    @Test(arguments: [7, 8, 9, 6_000])
    func digestsAndBase64AreThoseOfTheWholeText(prefixLength: Int) {
        let prefix = String(String(repeating: "policy rules {\n}\n", count: prefixLength / 16 + 1).prefix(prefixLength))
        let prefixed = PrefixedText(prefix)
        let suffixes = ["", "a", "ab", "abc", "abcd", "policy_data := {\"é\": \"ü\"}\n", String(repeating: "x", count: 1000)]
        let texts = suffixes.map { prefix + $0 } + ["", "r", String(prefix.dropLast()), "x" + prefix, String(prefix.dropFirst())]
        for text in texts {
            #expect(prefixed.sha256Hex(text) == Self.plainHex(text), "\(text.prefix(40))")
            let encoded = prefixed.base64(text)
            #expect(encoded == Self.plainBase64(text), "\(text.prefix(40))")
            #expect(prefixed.sha256HexOfEncoded(encoded) == Self.plainHex(encoded), "\(text.prefix(40))")
        }
        // An encoded text that only begins like the prefix's base64.
        let altered = "Z" + Self.plainBase64(prefix + "tail").dropFirst()
        #expect(prefixed.sha256HexOfEncoded(altered) == Self.plainHex(altered))
    }

    @Test func aGeneratedPolicyIsHashedAndEncodedAsAWhole() throws {
        let template: JSONValue = ["spec": ["containers": [["name": "app", "image": .string("nginx@sha256:" + String(repeating: "a", count: 64))]]]]
        let policy = PolicyBuilder.generate(template: template, namespace: "default", settings: PolicySettings(), workloadIdentity: false)
        #expect(policy.text.hasPrefix(PolicyRules.generatedPrefix))
        #expect(policy.hash == Self.plainHex(policy.text))
        #expect(policy.annotation == Self.plainBase64(policy.text))
        let spec: JSONValue = ["template": ["metadata": ["annotations": .object([AgentPolicy.annotationKey: .string(policy.annotation)])]]]
        let projected = PolicyDigest.project(deployment: spec)
        #expect(projected?[path: ["template", "metadata", "annotations", AgentPolicy.annotationKey]]?.stringValue == "sha256:" + Self.plainHex(policy.annotation))
    }
}
