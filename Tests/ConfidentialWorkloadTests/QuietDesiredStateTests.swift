import ControllerRuntime
import KubernetesClient
import Testing
@testable import ConfidentialWorkload

/// The remembered desired state of a workload no reconcile used since the previous sweep is forgotten
/// (settled workloads cost no memo, and no entry at all); one used in between is kept.
@Suite("Forgetting the desired states of quiet workloads")
struct QuietDesiredStateTests {
    let hot = ObjectKey(namespace: "team", name: "hot")
    let cold = ObjectKey(namespace: "team", name: "cold")

    func remember(_ key: ObjectKey, in memories: WorkloadMemories) {
        memories.update(key, uid: "u-\(key.name)") { memory in
            memory.build = .init(spec: CompactJSON(["replicas": 1]), context: BuildContext(), result: .failure(SpecErrors([])))
            memory.buildUsed = true
            memory.written["status"] = .init(["status": "written"] as JSONValue)
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
        #expect(!memories.remembers(cold), "nothing else was remembered of it: the entry goes")
        #expect(memories.read(hot, uid: "u-hot").build != nil)
        #expect(memories.read(hot, uid: "u-hot").written["status"]?.matches(["status": "written"] as JSONValue) == true,
            "what cwo wrote stays while the workload is reconciled: it bridges a cache that lags behind a write")
        #expect(memories.forgetQuietDesiredStates() == 1, "hot was not used since the last sweep")
        #expect(memories.read(hot, uid: "u-hot").build == nil && !memories.remembers(hot))
    }

    /// A quiet workload's key release state is kept (it is not rebuilt from the cluster), with its entry.
    @Test func keyReleaseStateOutlivesTheSweep() {
        let memories = WorkloadMemories()
        remember(cold, in: memories)
        memories.update(cold, uid: "u-cold") { $0.keyReleaseFailures = 2 }
        memories.forgetQuietDesiredStates()
        #expect(memories.forgetQuietDesiredStates() == 1)
        #expect(memories.remembers(cold) && memories.read(cold, uid: "u-cold").keyReleaseFailures == 2)
        #expect(memories.read(cold, uid: "u-cold").written.isEmpty)
    }

    /// Thousands of workloads settle: their entries go and the table gives its room back; a workload
    /// reconciled again starts a fresh entry.
    @Test func aSettledBurstLeavesNothingBehind() {
        let memories = WorkloadMemories()
        let keys = (0..<2000).map { ObjectKey(namespace: "team", name: "w\($0)") }
        for key in keys { remember(key, in: memories) }
        memories.forgetQuietDesiredStates()
        #expect(memories.forgetQuietDesiredStates() == 2000)
        #expect(keys.allSatisfy { !memories.remembers($0) })
        remember(keys[0], in: memories)
        #expect(memories.recall(keys[0], uid: "u-w0").build != nil)
    }

    @Test func recallOfAnotherUidFindsNothing() {
        let memories = WorkloadMemories()
        remember(hot, in: memories)
        #expect(memories.recall(hot, uid: "someone-else").build == nil)
    }
}
