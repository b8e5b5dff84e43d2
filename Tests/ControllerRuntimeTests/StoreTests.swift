@testable import ControllerRuntime
import KubernetesClient
import Testing

@Suite struct StoreTests {
    func object(_ name: String, owner: String?) throws -> UntypedObject {
        var metadata: JSONValue = ["name": .string(name), "namespace": "ns"]
        if let owner { metadata["labels"] = ["owner": .string(owner)] }
        return try UntypedObject(["metadata": metadata])
    }

    @Test func theIndexFollowsListsUpdatesAndDeletes() throws {
        let store = Store<UntypedObject>(index: { $0.metadata.labels?["owner"] })
        store.replace(with: [try object("a", owner: "x"), try object("b", owner: "x"), try object("c", owner: nil)])
        #expect(Set(store.indexed("x").map(\.name)) == ["a", "b"])
        store.upsert(try object("b", owner: "y"))
        #expect(store.indexed("x").map(\.name) == ["a"])
        #expect(store.indexed("y").map(\.name) == ["b"])
        store.remove(ObjectKey(namespace: "ns", name: "a"))
        #expect(store.indexed("x").isEmpty)
        store.replace(with: [try object("d", owner: "y")])
        #expect(store.indexed("y").map(\.name) == ["d"], "a relist replaces the index too")
    }

    /// A figure over the whole cache sees every stored object once, as stored.
    @Test func reduceVisitsEveryStoredObject() throws {
        let store = Store<UntypedObject>(index: { $0.metadata.labels?["owner"] })
        store.replace(with: [try object("a", owner: "x"), try object("b", owner: "x"), try object("c", owner: nil)])
        store.upsert(try object("c", owner: "y"))
        store.remove(ObjectKey(namespace: "ns", name: "a"))
        let owners = store.reduce(into: [String: Int]()) { counts, object in counts[object.metadata.labels?["owner"] ?? "none", default: 0] += 1 }
        #expect(owners == ["x": 1, "y": 1])
        #expect(Store<UntypedObject>().reduce(into: 0) { count, _ in count += 1 } == 0)
    }

    /// Change handlers get the object as the store keeps it, so old and new compare like for like.
    @Test func changesCarryTheTransformedObject() throws {
        let store = Store<UntypedObject>(transform: { object in
            var kept = object
            kept.raw["data"] = nil
            return kept
        })
        var first = try object("a", owner: nil)
        first.raw["data"] = ["big": "value"]
        let listed = store.replace(with: [first])
        #expect(listed.stored.map { $0.raw["data"] } == [nil])
        let (old, stored) = store.upsert(first)
        #expect(old?.raw["data"] == nil && stored.raw["data"] == nil)
        #expect(store.get(ObjectKey(namespace: "ns", name: "a")) == stored)
    }
}
