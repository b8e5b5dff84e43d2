@testable import ControllerRuntime
import KubernetesClient
import Testing

/// How long a reflector waits before listing or watching again, by what went wrong.
@Suite struct ReflectorRetryTests {
    typealias Subject = Reflector<UntypedObject>
    let options = Subject.Options()

    func delays(_ error: any Error, failures: ClosedRange<Int> = 1...8) -> [Duration] {
        failures.map { Subject.retryDelay(after: error, failures: $0, options: options) }
    }

    @Test func anUnreachableOrStartingServerIsLookedAtAgainWithinASecond() {
        let refused = KubeClientError.transport(method: "GET", path: "/api/v1/configmaps", underlying: "connection refused")
        // What a starting kube-apiserver answers: its Retry-After of 10 s would outlast the start itself.
        let starting = KubeError(
            reason: .serviceUnavailable, code: 503, message: "server is starting", method: "GET", path: "/api/v1/configmaps", retryAfter: .seconds(10))
        for delay in delays(refused) + delays(starting) {
            #expect(delay >= .milliseconds(500) && delay <= .seconds(1), "\(delay)")
        }
    }

    @Test func otherFailuresBackOffExponentiallyUpToTheCap() {
        let forbidden = KubeError(reason: .forbidden, code: 403, message: "forbidden", method: "GET", path: "/api/v1/configmaps")
        let delays = delays(forbidden)
        #expect(delays[0] >= .milliseconds(400) && delays[0] <= .milliseconds(800), "\(delays[0])")
        #expect(delays[3] >= .milliseconds(2500) && delays[3] <= .seconds(5), "\(delays[3])")
        #expect(delays.allSatisfy { $0 <= .seconds(5) })
        // A decoding failure is not an outage: it backs off too.
        let undecodable = KubeClientError.decoding(method: "GET", path: "/api/v1/configmaps", underlying: "bad JSON")
        #expect(self.delays(undecodable, failures: 4...4)[0] >= .milliseconds(2500))
    }

    @Test func theServersRetryAfterIsHonouredUpToALimit() {
        let throttled = KubeError(reason: .tooManyRequests, code: 429, message: "slow down", method: "GET", path: "/x", retryAfter: .seconds(7))
        #expect(delays(throttled) == Array(repeating: .seconds(7), count: 8))
        let unreasonable = KubeError(reason: .tooManyRequests, code: 429, message: "later", method: "GET", path: "/x", retryAfter: .seconds(3600))
        #expect(delays(unreasonable, failures: 1...1) == [.seconds(30)])
    }
}
