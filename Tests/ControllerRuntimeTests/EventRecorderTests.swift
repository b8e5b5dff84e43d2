import ControllerRuntime
import Foundation
import KubernetesClient
import Logging
import Testing
import TestSupport

/// Events leave the reconcile path: recording never waits for the server, a slow server costs dropped
/// events (counted) rather than an unbounded queue, and shutdown sends what is waiting.
@Suite struct EventRecorderTests {
    func meta(_ name: String) -> ObjectMeta {
        var metadata = ObjectMeta(name: name, namespace: "team")
        metadata.uid = "uid-\(name)"
        return metadata
    }

    @Test func recordedEventsAreAggregatedAndSentByShutdown() async throws {
        let server = try await FakeAPIServer.start()
        let client = try KubeClient(configuration: try server.configuration())
        let recorder = EventRecorder(client: client, controller: "cwo", instance: "test", logger: Logger(label: "test"))
        for name in ["a", "b", "a"] {
            recorder.record(regarding: meta(name), apiVersion: "v1", kind: "Thing", type: .warning, reason: "Broken", action: "Reconcile", note: "same note")
        }
        await recorder.shutdown()
        #expect(server.lines == ["POST /apis/events.k8s.io/v1/namespaces/team/events", "POST /apis/events.k8s.io/v1/namespaces/team/events"],
            "one event per object; the repeat within ten minutes is aggregated")
        #expect(recorder.dropped == 0)
        try await client.shutdown()
        await server.stop()
    }

    /// A burst of thousands of distinct events (each new workload with its own warning) keeps the
    /// aggregation map bounded, not ten minutes' worth of every event.
    @Test func theAggregationMapIsBoundedInABurst() async throws {
        let server = try await FakeAPIServer.start()
        let client = try KubeClient(configuration: try server.configuration())
        let recorder = EventRecorder(client: client, controller: "cwo", instance: "test", logger: Logger(label: "test"), bufferSize: 1)
        var largest = 0
        for index in 0..<10_000 {
            recorder.record(regarding: meta("w\(index)"), apiVersion: "v1", kind: "Thing", type: .warning, reason: "Broken", action: "Reconcile", note: "n")
            largest = max(largest, recorder.rememberedCount)
        }
        #expect(largest == 4096, "grew to the bound, never past it")
        #expect(recorder.rememberedCount < 4096)
        await recorder.shutdown()
        try await client.shutdown()
        await server.stop()
    }

    @Test func aSlowServerCostsDroppedEventsNotAWaitingReconcile() async throws {
        let server = try await FakeAPIServer.start()
        server.delay.withLock { $0 = .seconds(1) }
        let client = try KubeClient(configuration: try server.configuration())
        let recorder = EventRecorder(client: client, controller: "cwo", instance: "test", logger: Logger(label: "test"), bufferSize: 2)
        for index in 0..<10 {
            // Returns at once although each write takes a second.
            recorder.record(regarding: meta("w\(index)"), apiVersion: "v1", kind: "Thing", type: .normal, reason: "Seen", action: "Reconcile", note: "n")
        }
        // At most one in flight plus two waiting: the rest were dropped, and counted.
        #expect(recorder.dropped >= 7)
        await recorder.shutdown()
        #expect(server.lines.count == 10 - recorder.dropped)
        try await client.shutdown()
        await server.stop()
    }
}
