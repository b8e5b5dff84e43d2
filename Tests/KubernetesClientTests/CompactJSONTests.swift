import Foundation
@testable import KubernetesClient
import Testing

@Suite("Compact JSON and compacted Deployments")
struct CompactJSONTests {
    @Test func aValueComesBackEqualAndEqualValuesGiveEqualBytes() throws {
        let value = try JSONParser.parse(JSONParserTests.document)
        let compact = CompactJSON(value)
        #expect(compact.value == value)
        // The same content built in another order: the same bytes (keys are sorted).
        var reordered: JSONValue = [:]
        for key in (value.objectValue ?? [:]).keys.sorted().reversed() { reordered[key] = value[key] }
        #expect(CompactJSON(reordered) == compact)
        #expect(CompactJSON(["a": 1]) != CompactJSON(["a": 2]))
        #expect(compact.bytes.count < JSONParserTests.document.utf8.count)
    }

    @Test func aCompactedDeploymentReadsWritesAndEncodesLikeTheOriginal() throws {
        let json = #"""
            {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","namespace":"ns","resourceVersion":"7"},
            "spec":{"replicas":2,"template":{"metadata":{"annotations":{"cwo.dev/policy-hash":"abc"}},"spec":{"containers":[{"name":"app","image":"nginx"}]}}},
            "status":{"observedGeneration":1,"replicas":2}}
            """#
        let original = try JSONCoding.decode(Deployment.self, from: Data(json.utf8))
        let compacted = original.compacted()
        #expect(compacted.spec == original.spec && compacted.metadata == original.metadata && compacted.status == original.status)
        #expect(compacted.spec?[path: ["template", "metadata", "annotations", "cwo.dev/policy-hash"]] == "abc")
        #expect(compacted.status?.replicas == 2 && compacted.metadata.resourceVersion == "7")
        let reencoded = try JSONCoding.decode(JSONValue.self, from: JSONEncoder().encode(compacted))
        #expect(reencoded == (try JSONParser.parse(json)))

        var edited = compacted
        edited.spec?["replicas"] = 3
        #expect(edited.spec?["replicas"] == 3)
        #expect(edited.spec != original.spec)
        #expect(compacted.spec?["replicas"] == 2, "the copy it came from is unchanged")
    }
}
