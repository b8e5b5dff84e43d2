import ControllerRuntime
import KubernetesClient
import Testing
@testable import ConfidentialWorkload

/// The remembered desired state of a workload no reconcile used since the previous sweep is forgotten
/// (settled workloads cost no memo); one used in between is kept, and what cwo wrote is never forgotten.
@Suite("Forgetting the desired states of quiet workloads")
struct QuietDesiredStateTests {
    let hot = ObjectKey(namespace: "team", name: "hot")
    let cold = ObjectKey(namespace: "team", name: "cold")

    func remember(_ key: ObjectKey, in memories: WorkloadMemories) {
        memories.update(key, uid: "u-\(key.name)") { memory in
            memory.build = .init(spec: CompactJSON(["replicas": 1]), context: BuildContext(), result: .failure(SpecErrors([])))
            memory.buildUsed = true
            memory.written["status"] = .init(body: ["status": "written"], versionBefore: "7")
        }
    }

    @Test func aMemoUnusedForAWholeSweepIsForgotten() {
        let memories = WorkloadMemories()
        remember(hot, in: memories)
        remember(cold, in: memories)
        #expect(memories.forgetQuietDesiredStates() == 0, "both were used since the start")
        #expect(memories.recall(hot, uid: "u-hot").build != nil)  // a reconcile of `hot` uses its memo
        #expect(memories.forgetQuietDesiredStates() == 1)
        #expect(memories.read(cold, uid: "u-cold").build == nil)
        #expect(memories.read(hot, uid: "u-hot").build != nil)
        #expect(memories.read(cold, uid: "u-cold").written["status"]?.matches(["status": "written"], versionBefore: "7") == true,
            "what cwo wrote stays: it bridges a cache that lags behind a write")
        #expect(memories.forgetQuietDesiredStates() == 1, "hot was not used since the last sweep")
        #expect(memories.read(hot, uid: "u-hot").build == nil)
    }

    @Test func recallOfAnotherUidFindsNothing() {
        let memories = WorkloadMemories()
        remember(hot, in: memories)
        #expect(memories.recall(hot, uid: "someone-else").build == nil)
    }
}
