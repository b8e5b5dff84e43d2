import ControllerRuntime
import KubernetesClient
import Testing
@testable import ConfidentialWorkload

/// The watch event of cwo's own Deployment apply is recognised (and only that one), so it costs no
/// second reconcile; every other version of the Deployment still does.
@Suite("Echoes of cwo's own writes")
struct OwnWriteEchoTests {
    let key = ObjectKey(namespace: "team", name: "web")
    let applied: JSONValue = ["apiVersion": "apps/v1", "kind": "Deployment", "metadata": ["name": "web"]]

    @Test func theVersionCwoWroteIsAnEchoOnce() {
        let memories = WorkloadMemories()
        memories.expectEcho(key, version: "41", applied: applied)
        #expect(memories.echo(key, version: "41") == .echo(applied: applied))
        #expect(memories.echo(key, version: "41") == .none, "a second event of the same version is not skipped again")
    }

    @Test func anEchoCarriesWhatWasAppliedForTheCacheToCheck() {
        let memories = WorkloadMemories()
        memories.expectEcho(key, version: "41", applied: applied)
        memories.expectEcho(key, version: "43", applied: ["metadata": ["name": "web", "labels": ["tier": "2"]]])
        #expect(memories.echo(key, version: "43") == .echo(applied: ["metadata": ["name": "web", "labels": ["tier": "2"]]]), "the latest apply's")
    }

    /// An echo the watch brought before the apply's answer: its expectation is dropped, not kept (with the
    /// applied Deployment) until the next event; a later apply's expectation is not.
    @Test func anEchoThatCameFirstIsForgotten() {
        let memories = WorkloadMemories()
        memories.expectEcho(key, version: "41", applied: applied)
        memories.forgetEcho(key, version: "41")
        #expect(memories.echo(key, version: "41") == .none)
        memories.expectEcho(key, version: "43", applied: applied)
        memories.forgetEcho(key, version: "41")
        #expect(memories.echo(key, version: "43") == .echo(applied: applied))
    }

    @Test func anotherVersionIsNotAnEchoAndEndsTheExpectation() {
        let memories = WorkloadMemories()
        memories.expectEcho(key, version: "41", applied: applied)
        #expect(memories.echo(key, version: "42") == .none, "a change by someone else (a rollout, a hand edit)")
        #expect(memories.echo(key, version: "41") == .none, "an expectation overtaken by a later version is stale")
        #expect(memories.echo(ObjectKey(namespace: "team", name: "other"), version: "41") == .none)
    }

    /// A lone reconcile waits for its new Deployment to come through the watch before writing status
    /// (`reconcileDeployment`): the Deployment's event ends the wait, another child's does not, and
    /// without any event the wait ends at its limit.
    @Test func aDeploymentEventEndsTheWaitForItsDelivery() async {
        let memories = WorkloadMemories()
        let key = key
        let start = ContinuousClock.now
        let elapsed = await withTaskGroup(of: Duration?.self) { group in
            group.addTask {
                await memories.awaitDelivery(key, within: .seconds(60)) { false }
                return ContinuousClock.now - start
            }
            group.addTask {
                // For 200 ms, events that must not end the wait (sent again and again, so that some surely
                // come while it waits): another child of the workload, another workload's Deployment.
                while !Task.isCancelled, ContinuousClock.now - start < .milliseconds(200) {
                    memories.childEvent(key, Resource.configMaps.plural)
                    memories.childEvent(ObjectKey(namespace: "team", name: "other"), Resource.deployments.plural)
                    try? await Task.sleep(for: .milliseconds(10))
                }
                // Then the workload's Deployment, again until the wait ends.
                while !Task.isCancelled {
                    memories.childEvent(key, Resource.deployments.plural)
                    try? await Task.sleep(for: .milliseconds(10))
                }
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        #expect(elapsed.map { $0 >= .milliseconds(200) && $0 < .seconds(30) } == true, "ended by the Deployment's event: \(String(describing: elapsed))")
    }

    @Test func aDeliveryThatCameFirstIsNotWaitedFor() async {
        let memories = WorkloadMemories()
        let start = ContinuousClock.now
        await memories.awaitDelivery(key, within: .seconds(60)) { true }
        #expect(ContinuousClock.now - start < .seconds(30))
    }

    @Test func withoutAnEventTheWaitEndsAtItsLimit() async {
        let memories = WorkloadMemories()
        let start = ContinuousClock.now
        await memories.awaitDelivery(key, within: .milliseconds(100)) { false }
        let elapsed = ContinuousClock.now - start
        #expect(elapsed >= .milliseconds(100) && elapsed < .seconds(30))
    }
}
