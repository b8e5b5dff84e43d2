@testable import ConfidentialWorkload
@testable import ControllerRuntime
@testable import KubernetesClient
import Testing

@Suite struct WorkloadCacheTests {
    static let spec: JSONValue = ["template": ["spec": ["containers": [["name": "app", "image": "nginx:1.27"]]]]]

    func workload(annotations: [String: String]?) -> ConfidentialWorkload {
        var metadata = ObjectMeta(name: "w", namespace: "team", annotations: annotations)
        metadata.uid = "u-1"
        return ConfidentialWorkload(metadata: metadata, spec: Self.spec)
    }

    @Test func kubectlsCopyOfTheManifestIsNotCachedAndOtherAnnotationsAre() throws {
        // What `kubectl apply` (client-side) leaves on the workload: the manifest again, spec and all.
        let manifest = #"{"apiVersion":"cwo.dev/v1alpha1","kind":"ConfidentialWorkload","metadata":{"name":"w","namespace":"team"},"spec":{"template":{}}}"#
        let caches = WorkloadCaches()
        caches.workloads.replace(with: [
            workload(annotations: [WorkloadCaches.lastAppliedAnnotation: manifest, "team.example/owner": "payments"])
        ])
        let cached = try #require(caches.workloads.get(ObjectKey(namespace: "team", name: "w")))
        #expect(cached.metadata.annotations == ["team.example/owner": "payments"])
        #expect(cached.expanded().spec == Self.spec)

        // With nothing else annotated, no empty map is left behind.
        caches.workloads.replace(with: [workload(annotations: [WorkloadCaches.lastAppliedAnnotation: manifest])])
        #expect(caches.workloads.get(ObjectKey(namespace: "team", name: "w"))?.metadata.annotations == nil)
    }
}

extension WorkloadCacheTests {
    /// Converged in one burst, workloads of one shape carry equal conditions: the cache holds one copy of
    /// each, but for the conditions that name the workload, which are its own.
    @Test func equalConditionsOfTwoWorkloadsAreOneCopyAndThoseNamingTheWorkloadAreNot() throws {
        func converged(_ name: String) throws -> ConfidentialWorkload {
            let json = """
                {"metadata":{"name":"\(name)","namespace":"team","uid":"u-\(name)"},"spec":{},"status":{"observedGeneration":1,"conditions":[
                {"type":"PolicyReady","status":"True","observedGeneration":1,"lastTransitionTime":"2026-12-04T07:09:14Z","reason":"PolicyGenerated","message":"generated policy; not enforced: \(String(repeating: "x", count: 100))"},
                {"type":"DeploymentAvailable","status":"False","observedGeneration":1,"lastTransitionTime":"2026-12-04T07:09:14Z","reason":"DeploymentPending","message":"Deployment \(name) does not exist yet"}]}}
                """
            return try JSONCoding.decode(ConfidentialWorkload.self, from: Array(json.utf8))
        }
        let (first, second) = (WorkloadCaches.cached(try converged("w-1")), WorkloadCaches.cached(try converged("w-2")))
        let (a, b) = (try #require(first.status?.conditions), try #require(second.status?.conditions))
        #expect(a[0] == b[0] && a[0].isSameCopy(as: b[0]))
        #expect(a[1].message == "Deployment w-1 does not exist yet" && b[1].message == "Deployment w-2 does not exist yet")
        #expect(!a[1].isSameCopy(as: b[1]))
        // What the cache holds reads as what the server sent.
        #expect(first.status == (try converged("w-1")).status)
    }

    /// A shared condition is a value: changing one holder's copy leaves every other holder's as it was.
    @Test func changingASharedConditionChangesOnlyThatCopy() throws {
        let condition = Condition(type: "Ready", status: .true, observedGeneration: 2, lastTransitionTime: "2026-12-04T07:09:14Z",
                                  reason: "Ready", message: "every condition is met, and this message is long")
        var mine = condition.shared()
        let theirs = Condition(type: "Ready", status: .true, observedGeneration: 2, lastTransitionTime: "2026-12-04T07:09:14Z",
                               reason: "Ready", message: "every condition is met, and this message is long").shared()
        #expect(mine.isSameCopy(as: theirs))
        mine.status = .false
        mine.message = "changed"
        #expect(theirs.status == .true && theirs.message == "every condition is met, and this message is long")
        #expect(mine.status == .false && mine != theirs)
        // Encoded as metav1.Condition: the same members as ever, observedGeneration left out when unset.
        var unset = theirs
        unset.observedGeneration = nil
        let json = String(decoding: try JSONCoding.encoder.encode(unset), as: UTF8.self)
        #expect(json == #"{"lastTransitionTime":"2026-12-04T07:09:14Z","message":"every condition is met, and this message is long","reason":"Ready","status":"True","type":"Ready"}"#)
        #expect(try JSONCoding.decode(Condition.self, from: Array(json.utf8)) == unset)
    }
}

extension WorkloadCacheTests {
    /// `keyRelease` and `teeRegister` are held out of line, and read, compare and encode as the members
    /// they always were: present under their names when set, absent when not.
    @Test func statusMembersHeldOutOfLineCodeAsBefore() throws {
        var status = WorkloadStatus()
        status.platform = "CoCo"
        var release = KeyReleaseStatus(allowedHashes: ["a", "b"], configMapName: nil, keyID: "https://kbs.example/", releasePolicy: "Managed")
        release.resources = ["default/key/w"]
        status.keyRelease = release
        status.teeRegister = TEERegister(tee: "snp", name: "HOST_DATA", value: "00ff")
        let json = String(decoding: try JSONCoding.encoder.encode(status), as: UTF8.self)
        #expect(json == #"{"keyRelease":{"allowedHashes":["a","b"],"keyID":"https:\/\/kbs.example\/","releasePolicy":"Managed","resources":["default\/key\/w"]},"platform":"CoCo","teeRegister":{"name":"HOST_DATA","tee":"snp","value":"00ff"}}"#
            || json == #"{"keyRelease":{"allowedHashes":["a","b"],"keyID":"https://kbs.example/","releasePolicy":"Managed","resources":["default/key/w"]},"platform":"CoCo","teeRegister":{"name":"HOST_DATA","tee":"snp","value":"00ff"}}"#)
        let decoded = try JSONCoding.decode(WorkloadStatus.self, from: Array(json.utf8))
        #expect(decoded == status && decoded.keyRelease == release && decoded.teeRegister?.value == "00ff")
        // The status write's body is built without the text: the same tree, every member set.
        var full = status
        full.observedGeneration = 4
        full.deploymentName = "w"
        full.replicas = 2
        full.readyReplicas = 1
        full.policyHash = String(repeating: "ab", count: 32)
        full.policyMode = "Generated"
        full.initDataDigest = "00"
        full.images = [ImageStatus(name: "app", reference: "registry.example/app:1", digest: "sha256:" + String(repeating: "c", count: 64))]
        full.conditions = [Condition(type: "Ready", status: .false, observedGeneration: 4, lastTransitionTime: "2026-12-04T20:00:00Z",
                                     reason: "Progressing", message: "1 of 2 replicas ready")]
        #expect(try JSONValue(encoding: full) == JSONParser.parse(JSONCoding.encoder.encode(full)))
        #expect(try JSONValue(encoding: full)[path: ["keyRelease", "resources"]] == ["default/key/w"])
        var changed = decoded
        changed.keyRelease?.keyVersion = "v2"
        #expect(changed.keyRelease?.keyVersion == "v2" && decoded.keyRelease?.keyVersion == nil && changed != decoded)
        status.keyRelease = nil
        status.teeRegister = nil
        #expect(String(decoding: try JSONCoding.encoder.encode(status), as: UTF8.self) == #"{"platform":"CoCo"}"#)
    }
}

extension WorkloadCacheTests {
    /// The Deployment controller writes the same `Available` on every Deployment it rolled out in one
    /// second; `Progressing` names the Deployment's ReplicaSet. The cache shares the first, not the second.
    @Test func deploymentsShareTheirEqualConditionsAndKeepThoseNamingThem() throws {
        func rolledOut(_ name: String) throws -> Deployment {
            let json = """
                {"metadata":{"name":"\(name)","namespace":"team","uid":"u-\(name)","generation":1},"spec":{},"status":{"observedGeneration":1,"replicas":1,"conditions":[
                {"type":"Available","status":"True","lastUpdateTime":"2026-12-04T07:09:14Z","lastTransitionTime":"2026-12-04T07:09:14Z","reason":"MinimumReplicasAvailable","message":"Deployment has minimum availability."},
                {"type":"Progressing","status":"True","lastUpdateTime":"2026-12-04T07:09:14Z","lastTransitionTime":"2026-12-04T07:09:13Z","reason":"NewReplicaSetAvailable","message":"ReplicaSet \\"\(name)-5d8f9c7b6\\" has successfully progressed."}]}}
                """
            return try JSONCoding.decode(Deployment.self, from: Array(json.utf8))
        }
        let (first, second) = (WorkloadCaches.cached(try rolledOut("w-1")), WorkloadCaches.cached(try rolledOut("w-2")))
        let (a, b) = (try #require(first.status?.conditions), try #require(second.status?.conditions))
        #expect(a[0] == b[0] && a[0].isSameCopy(as: b[0]))
        #expect(!a[1].isSameCopy(as: b[1]) && a[1].message == #"ReplicaSet "w-1-5d8f9c7b6" has successfully progressed."#)
        #expect(first.status == (try rolledOut("w-1")).status)
        // Still a value, coded as apps/v1 DeploymentCondition.
        var changed = b[0]
        changed.status = "False"
        #expect(a[0].status == "True" && changed != a[0])
        let json = String(decoding: try JSONCoding.encoder.encode(DeploymentCondition(type: "Available", status: "True")), as: UTF8.self)
        #expect(json == #"{"status":"True","type":"Available"}"#)
        #expect(throws: (any Error).self) { try JSONCoding.decode(DeploymentCondition.self, from: Array(#"{"type":"Available"}"#.utf8)) }
    }
}
