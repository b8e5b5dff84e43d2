import ControllerRuntime
import KubernetesClient
import Testing
@testable import ConfidentialWorkload

/// The watch event of cwo's own Deployment apply is recognised (and only that one), before or after the
/// apply's answer, so it costs no second reconcile; every other version of the Deployment still does.
@Suite("Echoes of cwo's own writes")
struct OwnWriteEchoTests {
    let key = ObjectKey(namespace: "team", name: "web")
    let applied: JSONValue = ["apiVersion": "apps/v1", "kind": "Deployment", "metadata": ["name": "web"]]

    @Test func theVersionCwoWroteIsAnEchoOnce() {
        let memories = WorkloadMemories()
        memories.writing(key)
        #expect(memories.answered(key, version: "41", applied: applied) == .nothingCame)
        #expect(memories.echo(key, version: "41") == .echo(applied: applied))
        #expect(memories.echo(key, version: "41") == .none, "a second event of the same version is not skipped again")
    }

    @Test func anEchoCarriesWhatWasAppliedForTheCacheToCheck() {
        let memories = WorkloadMemories()
        let later: JSONValue = ["metadata": ["name": "web", "labels": ["tier": "2"]]]
        memories.writing(key)
        _ = memories.answered(key, version: "41", applied: applied)
        memories.writing(key)
        _ = memories.answered(key, version: "43", applied: later)
        #expect(memories.echo(key, version: "43") == .echo(applied: later), "the latest apply's")
    }

    /// The server sends the echo as it answers, on another connection: it often comes first. It is held,
    /// not taken for someone else's change (a second reconcile), and the answer shows it was the echo.
    @Test func anEchoThatComesBeforeTheAnswerIsHeldAndKnownByIt() {
        let memories = WorkloadMemories()
        memories.writing(key)
        #expect(memories.echo(key, version: "41") == .held)
        #expect(memories.echo(ObjectKey(namespace: "team", name: "other"), version: "41") == .none, "another workload's Deployment is not held")
        #expect(memories.answered(key, version: "41", applied: applied) == .echoCame)
        #expect(memories.echo(key, version: "41") == .none, "settled by the reconcile: not expected again")
        #expect(memories.echo(key, version: "42") == .none, "and later events are not held")
    }

    /// What comes during the write and is not its echo alone still reconciles the workload: another
    /// writer's version, the echo and a change after it, an event during a write that failed or that
    /// wrote nothing.
    @Test func anythingElseThatCameDuringTheWriteNeedsAnotherReconcile() {
        let memories = WorkloadMemories()
        memories.writing(key)
        #expect(memories.echo(key, version: "40") == .held)
        #expect(memories.answered(key, version: "41", applied: applied) == .changedMeanwhile)

        memories.writing(key)
        _ = memories.echo(key, version: "41")
        _ = memories.echo(key, version: "42")
        _ = memories.echo(key, version: "43")
        #expect(memories.answered(key, version: "41", applied: applied) == .changedMeanwhile)

        memories.writing(key)
        _ = memories.echo(key, version: "44")
        #expect(memories.answered(key, version: nil, applied: nil) == .changedMeanwhile)

        memories.writing(key)
        #expect(memories.answered(key, version: nil, applied: nil) == .nothingCame)
        #expect(memories.echo(key, version: "45") == .none, "a write that wrote nothing expects no echo")
        #expect(memories.answered(key, version: "46", applied: applied) == .notWriting)
    }

    @Test func anotherVersionIsNotAnEchoAndEndsTheExpectation() {
        let memories = WorkloadMemories()
        memories.writing(key)
        _ = memories.answered(key, version: "41", applied: applied)
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
