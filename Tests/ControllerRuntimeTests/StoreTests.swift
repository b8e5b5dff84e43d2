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
}
