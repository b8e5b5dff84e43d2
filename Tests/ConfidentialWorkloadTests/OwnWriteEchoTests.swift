import ControllerRuntime
import Testing
@testable import ConfidentialWorkload

/// The watch event of cwo's own Deployment apply is recognised (and only that one), so it costs no
/// second reconcile; every other version of the Deployment still does.
@Suite("Echoes of cwo's own writes")
struct OwnWriteEchoTests {
    let key = ObjectKey(namespace: "team", name: "web")

    @Test func theVersionCwoWroteIsAnEchoOnce() {
        let memories = WorkloadMemories()
        memories.expectEcho(key, version: "41")
        #expect(memories.echo(key, version: "41") == .echo)
        #expect(memories.echo(key, version: "41") == .none, "a second event of the same version is not skipped again")
    }

    @Test func anEchoWhoseAnswerContainedTheIntentIsVerified() {
        let memories = WorkloadMemories()
        memories.expectEcho(key, version: "41", verified: true)
        #expect(memories.echo(key, version: "41") == .verifiedEcho)
    }

    @Test func anotherVersionIsNotAnEchoAndEndsTheExpectation() {
        let memories = WorkloadMemories()
        memories.expectEcho(key, version: "41")
        #expect(memories.echo(key, version: "42") == .none, "a change by someone else (a rollout, a hand edit)")
        #expect(memories.echo(key, version: "41") == .none, "an expectation overtaken by a later version is stale")
        #expect(memories.echo(ObjectKey(namespace: "team", name: "other"), version: "41") == .none)
    }
}
