import KubernetesClient
import Testing

/// A cached Deployment's spec summary lives as long as the spec it summarizes: across status and
/// metadata updates (same generation) of the same object, and no further.
@Suite("Deployment spec summary")
struct DeploymentSummaryTests {
    func deployment(generation: Int64?, uid: String = "u1", replicas: Int = 1) -> Deployment {
        var metadata = ObjectMeta(name: "app", namespace: "team")
        metadata.uid = uid
        metadata.generation = generation
        var status = DeploymentStatus()
        status.replicas = replicas
        return Deployment(metadata: metadata, spec: ["replicas": 1, "template": ["spec": ["containers": [["name": "app", "image": "nginx"]]]]], status: status)
    }

    let summary: JSONValue = ["template": ["spec": ["containers": [["name": "app", "image": "nginx"]]]]]

    @Test func aStatusUpdateAtTheSameGenerationKeepsTheSummary() {
        let settled = deployment(generation: 3).withSpecSummary(summary)
        let update = deployment(generation: 3, replicas: 2).carryingSpecSummary(of: settled)
        #expect(update.specIsSummary)
        #expect(update.spec == summary)
        #expect(update.status?.replicas == 2, "status and metadata are the new object's")
    }

    @Test func aNewGenerationAnotherObjectOrNoSummaryArriveWhole() {
        let settled = deployment(generation: 3).withSpecSummary(summary)
        for (new, why) in [
            (deployment(generation: 4), "the spec changed"), (deployment(generation: 3, uid: "u2"), "deleted and created again"),
            (deployment(generation: nil), "no generation to compare"),
        ] {
            let stored = new.carryingSpecSummary(of: settled)
            #expect(!stored.specIsSummary, "\(why)")
            #expect(stored.spec?["replicas"] == 1, "\(why)")
        }
        #expect(!deployment(generation: 3).carryingSpecSummary(of: deployment(generation: 3)).specIsSummary, "the older one was whole")
    }
}
