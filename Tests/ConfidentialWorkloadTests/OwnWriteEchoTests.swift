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
        #expect(memories.isEcho(key, version: "41"))
        #expect(!memories.isEcho(key, version: "41"), "a second event of the same version is not skipped again")
    }

    @Test func anotherVersionIsNotAnEchoAndEndsTheExpectation() {
        let memories = WorkloadMemories()
        memories.expectEcho(key, version: "41")
        #expect(!memories.isEcho(key, version: "42"), "a change by someone else (a rollout, a hand edit)")
        #expect(!memories.isEcho(key, version: "41"), "an expectation overtaken by a later version is stale")
        #expect(!memories.isEcho(ObjectKey(namespace: "team", name: "other"), version: "41"))
    }
}
