@testable import ConfidentialWorkload
import Foundation
import KubernetesClient
import Testing

/// The names the runtime reports, as the policy must accept them.
@Suite("Image and pod names in the policy")
struct PolicyNamesTests {
    @Test(arguments: [
        ("nginx", ["nginx", "nginx:latest", "docker.io/library/nginx:latest"]),
        ("team/app:1", ["team/app:1", "docker.io/team/app:1"]),
        ("nginx:1.27@sha256:\(String(repeating: "a", count: 64))", [
            "nginx:1.27@sha256:\(String(repeating: "a", count: 64))", "nginx@sha256:\(String(repeating: "a", count: 64))",
            "docker.io/library/nginx@sha256:\(String(repeating: "a", count: 64))",
        ]),
        ("localhost:5000/app:2@sha256:\(String(repeating: "b", count: 64))", [
            "localhost:5000/app:2@sha256:\(String(repeating: "b", count: 64))", "localhost:5000/app@sha256:\(String(repeating: "b", count: 64))",
        ]),
        ("registry.example/app", ["registry.example/app", "registry.example/app:latest"]),
        ("host:5000/img", ["host:5000/img", "host:5000/img:latest"]),
        ("localhost/tool:3", ["localhost/tool:3"]),
    ])
    func imageNamesCoverEveryFormContainerdReports(image: String, reported: [String]) {
        // Exactly these, in this order: the list is written into the policy, so it is part of its hash.
        #expect(PolicyBuilder.imageNames(image) == reported)
    }

    @Test func podNamesOfADeploymentIncludeTruncatedOnes() throws {
        let short = try Regex(PolicyBuilder.PodNames.deployment("web").pattern)
        #expect(try short.wholeMatch(in: "web-7c56d66754-pq9qp") != nil)
        #expect(try short.wholeMatch(in: "web2-7c56d66754-pq9qp") == nil)
        #expect(try short.wholeMatch(in: "other-7c56d66754-pq9qp") == nil)
        let name = String(repeating: "n", count: 55)
        let long = try Regex(PolicyBuilder.PodNames.deployment(name).pattern)
        #expect(try long.wholeMatch(in: name + "-7c" + "pq9qp") != nil) // "<name>-<hash>-" cut at 58 characters
    }

    /// Exact-match regexes in the policy: every metacharacter escaped, all other text (UTF-8 too) kept.
    @Test func regexEscapingQuotesEveryMetacharacterAndNothingElse() {
        #expect(RuntimeFacts.escape("plain-text_1") == "plain-text_1")
        #expect(RuntimeFacts.escape(#"a.b*c+d?e(f)g|h[i]j{k}l^m$n\o"#) == #"a\.b\*c\+d\?e\(f\)g\|h\[i\]j\{k\}l\^m\$n\\o"#)
        #expect(RuntimeFacts.escape("ünï.cödé ✓") == "ünï\\.cödé ✓")
    }

    /// The policy's data section: sorted keys, two-space indentation, escapes as JSON has them.
    @Test func canonicalJSONIsIndentedSortedAndEscaped() throws {
        let value: JSONValue = ["b": [1, "x\"\n\u{1}"], "a": ["c": [], "d": [:], "e": true, "f": .null], "é": .number(2.5)]
        let text = CanonicalJSON.pretty(value, indent: "  ")
        #expect(text == "{\n    \"a\": {\n      \"c\": [],\n      \"d\": {},\n      \"e\": true,\n      \"f\": null\n    },\n    \"b\": [\n      1,\n      \"x\\\"\\n\\u0001\"\n    ],\n    \"é\": 2.5\n  }")
        #expect(try JSONParser.parse(text) == value)
        #expect(CanonicalJSON.quote("q\"") == #""q\"""#)
    }
}
