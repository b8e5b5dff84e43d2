import Foundation
import KubernetesClient
import Testing
import TestSupport

/// The client retries briefly; a longer pause the server asks for is thrown to the caller with the
/// error, so a controller requeues the key instead of holding a worker.
@Suite struct RetryTests {
    func client(_ server: FakeAPIServer, attempts: Int) throws -> KubeClient {
        var configuration = try server.configuration()
        configuration.maxAttempts = attempts
        return try KubeClient(configuration: configuration)
    }

    @Test func aLongRetryAfterIsTheCallersAndAShortOneIsWaited() async throws {
        let server = try await FakeAPIServer.start()
        let client = try client(server, attempts: 3)
        server.fail("GET", "/api/v1/namespaces/a/configmaps/long", status: 429, reason: "TooManyRequests", retryAfter: 30)
        await #expect { let _: UntypedObject = try await client.get(.configMaps, namespace: "a", name: "long") } throws: { error in
            (error as? KubeError)?.retryAfter == .seconds(30)
        }
        #expect(server.lines == ["GET /api/v1/namespaces/a/configmaps/long"], "no retry inside the client")

        server.clear()
        server.fail("GET", "/api/v1/namespaces/a/configmaps/short", status: 429, reason: "TooManyRequests", retryAfter: 1)
        await #expect(throws: KubeError.self) { let _: UntypedObject = try await client.get(.configMaps, namespace: "a", name: "short") }
        #expect(server.lines.count == 3, "a one-second pause is waited and retried: \(server.lines)")
        try await client.shutdown()
        await server.stop()
    }
}
