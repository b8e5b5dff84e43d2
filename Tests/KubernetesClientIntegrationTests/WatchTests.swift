import Foundation
import KubernetesClient
import Testing
import TestSupport

@Suite("Watch against the real control plane")
struct WatchTests {
    func configMap(_ name: String, data: [String: String] = [:]) throws -> UntypedObject {
        try UntypedObject(["apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": .string(name)], "data": .object(data.mapValues { .string($0) })])
    }

    /// Collects `count` non-bookmark events.
    func collect(_ stream: WatchStream<UntypedObject>, count: Int) async throws -> [WatchEvent<UntypedObject>] {
        var events: [WatchEvent<UntypedObject>] = []
        for try await event in stream {
            if case .bookmark = event { continue }
            events.append(event)
            if events.count == count { break }
        }
        return events
    }

    func describe(_ event: WatchEvent<UntypedObject>) -> String {
        switch event {
        case .added(let o): "ADDED \(o.name)"
        case .modified(let o): "MODIFIED \(o.name)"
        case .deleted(let o): "DELETED \(o.name)"
        case .bookmark: "BOOKMARK"
        }
    }

    @Test func resumesFromAResourceVersionWithoutMissingEvents() async throws {
        let client = try await TestCluster.shared().adminClient()
        defer { Task { try? await client.shutdown() } }
        let ns = try await client.makeTestNamespace("watch-resume")
        let first: UntypedObject = try await client.create(.configMaps, namespace: ns, try configMap("a"))
        let resumeFrom = try #require(first.metadata.resourceVersion)
        // These happen while nobody watches.
        let _: UntypedObject = try await client.create(.configMaps, namespace: ns, try configMap("b"))
        let _: UntypedObject = try await client.patch(.configMaps, namespace: ns, name: "a", .merge(["data": ["x": "1"]]))
        try await client.delete(.configMaps, namespace: ns, name: "b")

        let stream: WatchStream<UntypedObject> = try await client.watch(.configMaps, namespace: ns, options: .init(resourceVersion: resumeFrom, timeoutSeconds: 30))
        let events = try await collect(stream, count: 3)
        #expect(events.map(describe) == ["ADDED b", "MODIFIED a", "DELETED b"])
    }

    @Test func deliversObjectsLargerThan64KiB() async throws {
        let client = try await TestCluster.shared().adminClient()
        defer { Task { try? await client.shutdown() } }
        let ns = try await client.makeTestNamespace("watch-large")
        let list: ObjectList<UntypedObject> = try await client.list(.configMaps, namespace: ns)
        let stream: WatchStream<UntypedObject> = try await client.watch(
            .configMaps, namespace: ns, options: .init(resourceVersion: list.metadata.resourceVersion, timeoutSeconds: 30))
        let big = String(repeating: "0123456789abcdef", count: 300 * 1024 / 16)  // 300 KiB
        async let events = collect(stream, count: 1)
        let _: UntypedObject = try await client.create(.configMaps, namespace: ns, try configMap("big", data: ["blob": big]))
        let received = try await events
        guard case .added(let object) = received.first else {
            Issue.record("expected ADDED, got \(received.map(describe))")
            return
        }
        #expect(object.raw[path: ["data", "blob"]]?.stringValue == big)
    }

    @Test func compactedResourceVersionIsGone() async throws {
        let client = try await TestCluster.shared().adminClient()
        defer { Task { try? await client.shutdown() } }
        let ns = try await client.makeTestNamespace("watch-gone")
        let first: UntypedObject = try await client.create(.configMaps, namespace: ns, try configMap("old"))
        let stale = try #require(first.metadata.resourceVersion)
        // Push the old version out of the watch cache window and past etcd compaction (10 s interval in tests).
        for index in 0..<120 {
            let _: UntypedObject = try await client.patch(.configMaps, namespace: ns, name: "old", .merge(["data": ["i": .string("\(index)")]]))
        }
        let error = try await client.goneError(.configMaps, namespace: ns, from: stale, as: UntypedObject.self)
        #expect(error.reason == .gone)
        #expect(error.code == 410)
    }

    @Test func cancellingTheConsumerEndsTheWatch() async throws {
        let client = try await TestCluster.shared().adminClient()
        defer { Task { try? await client.shutdown() } }
        let ns = try await client.makeTestNamespace("watch-cancel")
        let task = Task {
            let stream: WatchStream<UntypedObject> = try await client.watch(.configMaps, namespace: ns, options: .init(timeoutSeconds: 300))
            for try await _ in stream {}
        }
        try await Task.sleep(for: .milliseconds(300))
        let start = ContinuousClock.now
        task.cancel()
        let result = await task.result
        #expect(ContinuousClock.now - start < .seconds(2))
        #expect(throws: (any Error).self) { try result.get() }
    }

    @Test func crudAndStatusOfACustomResource() async throws {
        let client = try await TestCluster.shared().adminClient()
        defer { Task { try? await client.shutdown() } }
        let group = "widgets-\(UUID().uuidString.prefix(6).lowercased()).test.cwo.dev"
        let crd: JSONValue = [
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": ["name": .string("widgets.\(group)")],
            "spec": [
                "group": .string(group), "scope": "Namespaced",
                "names": ["plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"],
                "versions": [[
                    "name": "v1", "served": true, "storage": true, "subresources": ["status": [:]],
                    "schema": ["openAPIV3Schema": [
                        "type": "object",
                        "properties": [
                            "spec": ["type": "object", "properties": ["size": ["type": "integer", "default": 3]]],
                            "status": ["type": "object", "properties": ["phase": ["type": "string"]]],
                        ],
                    ]],
                ]],
            ],
        ]
        let _: UntypedObject = try await client.create(.customResourceDefinitions, try UntypedObject(crd))
        defer { Task { try? await client.delete(.customResourceDefinitions, name: "widgets.\(group)") } }
        let widgets = Resource(group: group, version: "v1", plural: "widgets", kind: "Widget", namespaced: true)
        let ns = try await client.makeTestNamespace("crd")
        let widget: JSONValue = ["apiVersion": .string("\(group)/v1"), "kind": "Widget", "metadata": ["name": "w1"], "spec": [:]]
        // The CRD takes a moment to be served.
        let created = try await eventually(timeout: .seconds(15), "the CRD to be served") { () -> UntypedObject? in
            try await client.create(widgets, namespace: ns, try UntypedObject(widget))
        }
        #expect(created.raw[path: ["spec", "size"]] == 3, "server-side default applied")

        // Status goes through its own subresource; a spec change there is ignored.
        let status: UntypedObject = try await client.patch(
            widgets, namespace: ns, name: "w1", subresource: "status", .merge(["status": ["phase": "Ready"], "spec": ["size": 9]]))
        #expect(status.raw[path: ["status", "phase"]] == "Ready")
        #expect(status.raw[path: ["spec", "size"]] == 3)
        #expect(status.metadata.generation == created.metadata.generation)

        let applied: UntypedObject = try await client.apply(
            widgets, namespace: ns, name: "w1", ["apiVersion": .string("\(group)/v1"), "kind": "Widget", "metadata": ["name": "w1"], "spec": ["size": 5]] as JSONValue,
            fieldManager: "test", force: true)
        #expect(applied.raw[path: ["spec", "size"]] == 5)
        #expect(applied.metadata.generation == (created.metadata.generation ?? 0) + 1)

        let list: ObjectList<UntypedObject> = try await client.list(widgets, namespace: ns)
        #expect(list.items.map(\.name) == ["w1"])
        try await client.delete(widgets, namespace: ns, name: "w1")
        await #expect { let _: UntypedObject = try await client.get(widgets, namespace: ns, name: "w1") } throws: { $0.isKube(.notFound) }
    }
}
