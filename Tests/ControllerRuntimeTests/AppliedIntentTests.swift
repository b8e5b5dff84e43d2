import ControllerRuntime
import KubernetesClient
import Testing

@Suite struct AppliedIntentTests {
    let intent = AppliedIntent(annotation: "example.com/intent")

    func object(selector: [String: JSONValue], annotations: [String: JSONValue]? = nil) -> JSONValue {
        var metadata: JSONValue = ["name": "w"]
        if let annotations { metadata["annotations"] = .object(annotations) }
        return ["apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": ["template": ["spec": ["nodeSelector": .object(selector)]]]]
    }

    /// What the server returns for an applied body: the stamp kept, defaults and others' fields added.
    func served(_ body: JSONValue) -> JSONValue {
        var live = body
        live["metadata"]?["uid"] = "u"
        live["metadata"]?["annotations"]?["someone-else"] = "x"
        live["spec"]?["template"]?["spec"]?["dnsPolicy"] = "ClusterFirst"
        return live
    }

    @Test func aRemovalIsAChangeOfIntent() {
        let old = intent.stamp(object(selector: ["a": "1", "b": "2"]))
        let new = intent.stamp(object(selector: ["a": "1"]))
        let live = served(old)
        // Containment alone would miss it: the live object still has everything the new intent sets.
        #expect(AppliedState.contains(live, new["spec"].map { ["spec": $0] } ?? [:]))
        #expect(intent.decide(desired: new, live: live) == .intentChanged)
        #expect(intent.decide(desired: old, live: live) == .upToDate)
    }

    @Test func aHandEditOfAnOwnedFieldIsDrift() {
        let desired = intent.stamp(object(selector: ["a": "1"]))
        var live = served(desired)
        live["spec"]?["template"]?["spec"]?["nodeSelector"]?["a"] = "edited"
        #expect(intent.decide(desired: desired, live: live) == .drifted(field: ".spec.template.spec.nodeSelector.a"))
        #expect(intent.decide(desired: desired, live: nil) == .create)
    }

    @Test func theDigestIsCanonicalAndIgnoresItsOwnAnnotation() {
        let plain = object(selector: ["a": "1", "b": "2"], annotations: ["k": "v"])
        let reordered: JSONValue = try! JSONParser.parse(#"{"spec":{"template":{"spec":{"nodeSelector":{"b":"2","a":"1"}}}},"metadata":{"annotations":{"k":"v"},"name":"w"},"kind":"Deployment","apiVersion":"apps/v1"}"#)
        #expect(intent.stamp(plain) == intent.stamp(reordered))
        let digest = intent.digest(of: intent.stamp(plain))
        #expect(digest?.count == 64)
        // Stamping a stamped body gives the same digest: it covers the body without the stamp.
        #expect(intent.digest(of: intent.stamp(intent.stamp(plain))) == digest)
        // Without annotations of its own, the body gets exactly one.
        let bare = intent.stamp(object(selector: [:]))
        #expect(bare[path: ["metadata", "annotations"]]?.objectValue?.count == 1)
        #expect(intent.digest(of: intent.stamp(bare)) == intent.digest(of: bare))
    }

    @Test func aCondensedDigestStillSeesEveryChangeOfTheCondensedValue() {
        // Condensing replaces a large value with a digest of its own, as cwo does with the policy annotation.
        let condensing = AppliedIntent(annotation: "example.com/intent") { body in
            var condensed = body
            if let blob = body[path: ["spec", "blob"]]?.stringValue { condensed["spec"]?["blob"] = .string("sha256:" + AppliedIntent.digest(.string(blob))) }
            return condensed
        }
        func body(_ blob: String) -> JSONValue { ["metadata": ["name": "w"], "spec": ["blob": .string(blob), "replicas": 1]] }
        let stamped = condensing.stampWithCondensed(body(String(repeating: "a", count: 50_000)))
        let changed = condensing.stamp(body(String(repeating: "a", count: 49_999) + "b"))
        #expect(condensing.digest(of: changed) != condensing.digest(of: stamped.body))
        #expect(condensing.decide(desired: changed, live: served(stamped.body)) == .intentChanged)
        // The body and its condensed form carry one digest; the condensed form is what condensing gives.
        #expect(condensing.digest(of: stamped.condensed) == condensing.digest(of: stamped.body))
        #expect(stamped.condensed[path: ["spec", "blob"]]?.stringValue?.hasPrefix("sha256:") == true)
        #expect(stamped.condensed["metadata"] == stamped.body["metadata"])
        // Without condensing, the same body has another digest: the digest is of the condensed form.
        #expect(intent.digest(of: intent.stamp(body(String(repeating: "a", count: 50_000)))) != condensing.digest(of: stamped.body))
    }

    @Test func aStampOfTheSameIntentByAnOlderVersionIsDecidedAsIfStampedAlike() {
        // The older version did not condense: its digest is of the whole body.
        let condensing = AppliedIntent(annotation: "example.com/intent") { body in
            var condensed = body
            condensed["spec"]?["template"] = "condensed"
            return condensed
        }
        let body = object(selector: ["a": "1"])
        let desired = condensing.stamp(body)
        let older = condensing.uncondensedDigest(of: body)
        var live = served(desired)
        live["metadata"]?["annotations"]?["example.com/intent"] = .string(older)
        #expect(condensing.decide(desired: desired, live: live) == .intentChanged)
        #expect(condensing.decide(desired: desired, live: live, olderDigest: older) == .upToDate)
        #expect(condensing.decide(desired: desired, live: live, verified: true, olderDigest: older) == .upToDate)
        // A hand edit is still drift; another intent's older stamp, or none at all, is still a change of intent.
        var edited = live
        edited["spec"]?["template"]?["spec"]?["nodeSelector"]?["a"] = "edited"
        #expect(condensing.decide(desired: desired, live: edited, olderDigest: older) == .drifted(field: ".spec.template.spec.nodeSelector.a"))
        let another = condensing.uncondensedDigest(of: object(selector: ["a": "1", "b": "2"]))
        #expect(condensing.decide(desired: desired, live: live, olderDigest: another) == .intentChanged)
        var unstamped = live
        unstamped["metadata"]?["annotations"]?["example.com/intent"] = nil
        #expect(condensing.decide(desired: desired, live: unstamped, olderDigest: older) == .intentChanged)
    }

    @Test func statusOnlyUpdatesAreFilteredAtTheSource() {
        var old = UntypedObject.test(generation: 1)
        var new = old
        new.metadata.resourceVersion = "2"
        #expect(!StoreChange.updated(old: old, new: new).changesSpecOrMetadata)
        new.metadata.generation = 2
        #expect(StoreChange.updated(old: old, new: new).changesSpecOrMetadata)
        new = old
        new.metadata.deletionTimestamp = "2026-12-01T00:00:00Z"
        #expect(StoreChange.updated(old: old, new: new).changesSpecOrMetadata)
        old.metadata.finalizers = ["a"]
        #expect(StoreChange.updated(old: old, new: new).changesSpecOrMetadata)
        #expect(StoreChange.added(old).changesSpecOrMetadata && StoreChange.deleted(old).changesSpecOrMetadata)
    }
}

extension UntypedObject {
    static func test(generation: Int64) -> UntypedObject {
        var object = try! UntypedObject(["apiVersion": "v1", "kind": "Thing", "metadata": ["name": "t", "namespace": "n", "resourceVersion": "1"]])
        object.metadata.generation = generation
        return object
    }
}
