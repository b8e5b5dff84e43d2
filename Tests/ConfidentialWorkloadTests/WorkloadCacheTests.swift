@testable import ConfidentialWorkload
@testable import ControllerRuntime
import KubernetesClient
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
