import Foundation
import KubernetesClient
import Testing
import TestSupport

/// Every client operation against a real kube-apiserver + etcd.
@Suite("Client against the real control plane")
struct ClientOperationsTests {
    func configMap(_ name: String, _ data: [String: String] = [:]) throws -> UntypedObject {
        try UntypedObject([
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": .string(name)],
            "data": .object(data.mapValues { .string($0) }),
        ])
    }

    @Test func crudOfACoreType() async throws {
        let cluster = try await TestCluster.shared()
        let client = try cluster.adminClient()
        defer { Task { try? await client.shutdown() } }
        let ns = try await client.makeTestNamespace("crud")

        let created: UntypedObject = try await client.create(.configMaps, namespace: ns, try configMap("one", ["k": "v"]))
        #expect(created.metadata.uid != nil)
        #expect(created.raw[path: ["data", "k"]] == "v")

        let fetched: UntypedObject = try await client.get(.configMaps, namespace: ns, name: "one")
        #expect(fetched.metadata.resourceVersion == created.metadata.resourceVersion)

        // Creating it again is AlreadyExists.
        await #expect { let _: UntypedObject = try await client.create(.configMaps, namespace: ns, try configMap("one")) } throws: {
            $0.isKube(.alreadyExists)
        }

        var raw = fetched.raw
        raw["data"] = ["k": "w"]
        let replaced: UntypedObject = try await client.replace(.configMaps, namespace: ns, name: "one", try UntypedObject(raw))
        #expect(replaced.raw[path: ["data", "k"]] == "w")

        // A replace with the old resourceVersion is a Conflict (optimistic concurrency).
        await #expect { let _: UntypedObject = try await client.replace(.configMaps, namespace: ns, name: "one", try UntypedObject(raw)) } throws: {
            $0.isKube(.conflict)
        }

        // Delete with a wrong UID precondition is refused; with the right one it goes.
        await #expect {
            try await client.delete(.configMaps, namespace: ns, name: "one", options: .init(preconditions: .init(uid: "not-the-uid")))
        } throws: { $0.isKube(.conflict) }
        try await client.delete(.configMaps, namespace: ns, name: "one", options: .init(propagationPolicy: .background, preconditions: .init(uid: created.metadata.uid)))
        await #expect { let _: UntypedObject = try await client.get(.configMaps, namespace: ns, name: "one") } throws: { $0.isKube(.notFound) }
    }

    @Test func invalidObjectsReportTheirCauses() async throws {
        let client = try await TestCluster.shared().adminClient()
        defer { Task { try? await client.shutdown() } }
        let ns = try await client.makeTestNamespace("invalid")
        do {
            let _: UntypedObject = try await client.create(.configMaps, namespace: ns, try configMap("Not_A_Valid_Name"))
            Issue.record("expected Invalid")
        } catch let error as KubeError {
            #expect(error.reason == .invalid)
            #expect(error.code == 422)
            #expect(error.causes.contains { $0.field == "metadata.name" })
            #expect(error.description.contains("POST /api/v1/namespaces/\(ns)/configmaps"))
        }
    }

    @Test func patchesMergeAndJSON() async throws {
        let client = try await TestCluster.shared().adminClient()
        defer { Task { try? await client.shutdown() } }
        let ns = try await client.makeTestNamespace("patch")
        let _: UntypedObject = try await client.create(.configMaps, namespace: ns, try configMap("p", ["a": "1", "b": "2"]))

        let merged: UntypedObject = try await client.patch(.configMaps, namespace: ns, name: "p", .merge(["data": ["a": "10", "b": nil]]))
        #expect(merged.raw["data"] == ["a": "10"])

        let patched: UntypedObject = try await client.patch(
            .configMaps, namespace: ns, name: "p",
            .json([["op": "test", "path": "/data/a", "value": "10"], ["op": "add", "path": "/data/c", "value": "3"]]))
        #expect(patched.raw["data"] == ["a": "10", "c": "3"])

        // A failed `test` op rejects the whole patch.
        await #expect {
            let _: UntypedObject = try await client.patch(.configMaps, namespace: ns, name: "p", .json([["op": "test", "path": "/data/a", "value": "nope"]]))
        } throws: { error in (error as? KubeError).map { $0.code == 422 || $0.code == 409 } ?? false }
    }

    @Test func serverSideApplyWithTwoFieldManagers() async throws {
        let client = try await TestCluster.shared().adminClient()
        defer { Task { try? await client.shutdown() } }
        let ns = try await client.makeTestNamespace("ssa")
        let body: JSONValue = ["apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": "shared"], "data": ["owner": "alpha"]]
        let first: UntypedObject = try await client.apply(.configMaps, namespace: ns, name: "shared", body, fieldManager: "alpha")
        #expect(first.raw[path: ["data", "owner"]] == "alpha")

        // Applying the same body again changes nothing (no new resourceVersion).
        let again: UntypedObject = try await client.apply(.configMaps, namespace: ns, name: "shared", body, fieldManager: "alpha")
        #expect(again.metadata.resourceVersion == first.metadata.resourceVersion)

        var other = body
        other["data"] = ["owner": "beta"]
        do {
            let _: UntypedObject = try await client.apply(.configMaps, namespace: ns, name: "shared", other, fieldManager: "beta")
            Issue.record("expected a conflict without force")
        } catch let error as KubeError {
            #expect(error.reason == .conflict)
            #expect(error.message.contains("alpha"))
        }
        let forced: UntypedObject = try await client.apply(.configMaps, namespace: ns, name: "shared", other, fieldManager: "beta", force: true)
        #expect(forced.raw[path: ["data", "owner"]] == "beta")
        let managers = forced.metadata.managedFields?.compactMap(\.manager) ?? []
        #expect(managers.contains("beta"))
    }

    @Test func listPagesWithLimitAndContinue() async throws {
        let client = try await TestCluster.shared().adminClient()
        defer { Task { try? await client.shutdown() } }
        let ns = try await client.makeTestNamespace("paging")
        for index in 0..<25 {
            let _: UntypedObject = try await client.create(.configMaps, namespace: ns, try configMap("cm-\(index)", ["i": "\(index)"]))
        }
        let firstPage: ObjectList<UntypedObject> = try await client.list(.configMaps, namespace: ns, options: .init(labelSelector: nil, limit: 10))
        #expect(firstPage.items.count == 10)
        #expect(firstPage.metadata.continue?.isEmpty == false)
        let secondPage: ObjectList<UntypedObject> = try await client.list(.configMaps, namespace: ns, options: .init(limit: 10, continue: firstPage.metadata.continue))
        #expect(Set(firstPage.items.map(\.name)).isDisjoint(with: secondPage.items.map(\.name)))

        let all: ObjectList<UntypedObject> = try await client.listAll(.configMaps, namespace: ns, pageSize: 10)
        // 25 of ours plus the namespace's kube-root-ca.crt when that controller runs (it does not here).
        #expect(Set(all.items.map(\.name)).isSuperset(of: (0..<25).map { "cm-\($0)" }))
        #expect(all.metadata.resourceVersion?.isEmpty == false)

        let selected: ObjectList<UntypedObject> = try await client.list(.configMaps, namespace: ns, options: .init(fieldSelector: "metadata.name=cm-7"))
        #expect(selected.items.map(\.name) == ["cm-7"])
    }

    @Test func deleteCollectionDeletesOnlyItsNamespace() async throws {
        let client = try await TestCluster.shared().adminClient()
        defer { Task { try? await client.shutdown() } }
        let ns = try await client.makeTestNamespace("deletecollection")
        let other = try await client.makeTestNamespace("deletecollection-other")
        for index in 0..<5 {
            let _: UntypedObject = try await client.create(.configMaps, namespace: ns, try configMap("cm-\(index)"))
        }
        let _: UntypedObject = try await client.create(.configMaps, namespace: other, try configMap("kept"))
        try await client.deleteCollection(.configMaps, namespace: ns)
        let left: ObjectList<UntypedObject> = try await client.list(.configMaps, namespace: ns)
        #expect(left.items.map(\.name).filter { $0.hasPrefix("cm-") } == [])
        let kept: ObjectList<UntypedObject> = try await client.list(.configMaps, namespace: other)
        #expect(kept.items.map(\.name).contains("kept"))
    }

    @Test func forbiddenForAnUnprivilegedUser() async throws {
        let cluster = try await TestCluster.shared()
        let user = try cluster.userClient()
        defer { Task { try? await user.shutdown() } }
        do {
            let _: ObjectList<UntypedObject> = try await user.list(.configMaps, namespace: "kube-system")
            Issue.record("expected Forbidden")
        } catch let error as KubeError {
            #expect(error.reason == .forbidden)
            #expect(error.code == 403)
            #expect(error.message.contains("alice"))
        }
    }

    @Test func serverVersionIsReadable() async throws {
        let client = try await TestCluster.shared().adminClient()
        defer { Task { try? await client.shutdown() } }
        let version = try await client.serverVersion()
        #expect(version.isAtLeast(major: 1, minor: 20))
    }
}
