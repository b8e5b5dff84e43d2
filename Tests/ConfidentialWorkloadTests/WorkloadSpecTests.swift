import ConfidentialWorkload
import KubernetesClient
import Testing

func workload(_ name: String = "demo", spec: JSONValue, namespace: String = "team", generation: Int64 = 1) -> ConfidentialWorkload {
    var meta = ObjectMeta(name: name, namespace: namespace)
    meta.uid = "uid-1"
    meta.generation = generation
    return ConfidentialWorkload(metadata: meta, spec: spec)
}

let minimalSpec: JSONValue = ["template": ["spec": ["containers": [["name": "app", "image": "nginx:1.27"]]]]]

@Suite struct WorkloadSpecTests {
    @Test func defaultsMatchTheCRD() throws {
        let spec = try WorkloadSpec.parse(workload(spec: minimalSpec)).get()
        #expect(spec.replicas == 1)
        #expect(spec.runtimeClassName == "kata-cc")
        #expect(spec.nodeSelector.isEmpty)
        #expect(spec.containers == [ContainerView(name: "app", image: "nginx:1.27")])
    }

    /// Workloads the schema lets through but cwo cannot run, each with the field its message must name.
    static let one: JSONValue = [["name": "a", "image": "x"]]
    static func spec(_ fields: [String: JSONValue], containers: JSONValue = one, template: [String: JSONValue] = [:]) -> JSONValue {
        var templateFields = template
        if templateFields["spec"] == nil { templateFields["spec"] = ["containers": containers] }
        var all = fields
        if all["template"] == nil { all["template"] = .object(templateFields) }
        return .object(all)
    }
    static let invalidCases: [(String, JSONValue, String)] = [
        ("no template", ["replicas": 1], "spec.template"),
        ("no containers", spec([:], containers: []), "spec.template.spec.containers"),
        ("containers not a list", spec([:], containers: "app"), "spec.template.spec.containers"),
        ("container without image", spec([:], containers: [["name": "app"]]), "spec.template.spec.containers[0].image"),
        ("bad container name", spec([:], containers: [["name": "App_1", "image": "x"]]), "spec.template.spec.containers[0].name"),
        ("duplicate names", spec([:], containers: [["name": "a", "image": "x"], ["name": "a", "image": "y"]]), "spec.template.spec"),
        ("init duplicate", spec([:], template: ["spec": ["initContainers": one, "containers": one]]), "spec.template.spec"),
        ("negative replicas", spec(["replicas": -1]), "spec.replicas"),
        ("fractional replicas", spec(["replicas": .number(1.5)]), "spec.replicas"),
        ("runtime class not a name", spec(["runtimeClassName": "Kata CC"]), "spec.runtimeClassName"),
        ("node selector not strings", spec(["nodeSelector": ["workload": 1]]), "spec.nodeSelector[workload]"),
        ("selector label fight", spec([:], template: ["metadata": ["labels": ["cwo.dev/workload": "other"]], "spec": ["containers": one]]), "spec.template.metadata.labels[cwo.dev/workload]"),
        ("label not a string", spec([:], template: ["metadata": ["labels": ["tier": true]], "spec": ["containers": one]]), "spec.template.metadata.labels[tier]"),
        ("template spec missing", spec([:], template: ["metadata": [:], "spec": nil]), "spec.template.spec"),
    ]

    /// Workloads the schema lets through but cwo cannot run, each with the field its message must name.
    @Test(arguments: invalidCases)
    func invalidSpecsNameTheirField(name: String, spec: JSONValue, field: String) {
        switch WorkloadSpec.parse(workload(spec: spec)) {
        case .success: Issue.record("\(name): accepted")
        case .failure(let errors):
            #expect(errors.reason == "InvalidSpec")
            #expect(errors.errors.contains { $0.field == field }, "\(name): \(errors)")
        }
    }

    @Test func aNameTooLongForTheSelectorLabelIsInvalid() {
        let name = String(repeating: "a", count: 64)
        guard case .failure(let errors) = WorkloadSpec.parse(workload(name, spec: minimalSpec)) else {
            Issue.record("accepted a 64-character name")
            return
        }
        #expect(errors.errors.first?.field == "metadata.name")
        #expect(throws: Never.self) { try WorkloadSpec.parse(workload(String(repeating: "a", count: 63), spec: minimalSpec)).get() }
    }
}
