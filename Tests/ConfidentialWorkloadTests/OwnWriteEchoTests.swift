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
}
