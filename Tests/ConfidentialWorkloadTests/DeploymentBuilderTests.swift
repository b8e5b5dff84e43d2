import ConfidentialWorkload
import KubernetesClient
import Testing

@Suite struct DeploymentBuilderTests {
    let userTemplate: JSONValue = [
        "metadata": ["labels": ["tier": "backend"], "annotations": ["note": "kept"]],
        "spec": [
            "nodeSelector": ["zone": "a", "workload": "general"],
            "containers": [["name": "app", "image": "nginx:1.27", "ports": [["containerPort": 80]], "futureField": ["x": 1]]],
            "terminationGracePeriodSeconds": 5,
        ],
    ]

    func build(_ extra: [String: JSONValue] = [:]) throws -> JSONValue {
        var spec: [String: JSONValue] = ["replicas": 3, "template": userTemplate, "nodeSelector": ["workload": "confidential"]]
        spec.merge(extra) { $1 }
        return try DesiredState.build(workload(spec: .object(spec))).get().deployment
    }

    @Test func ownedByTheWorkloadAndLabelled() throws {
        let deployment = try build()
        #expect(deployment["apiVersion"] == "apps/v1")
        #expect(deployment[path: ["metadata", "name"]] == "demo")
        #expect(deployment[path: ["metadata", "namespace"]] == "team")
        #expect(deployment[path: ["metadata", "labels"]] == ["app.kubernetes.io/managed-by": "cwo", "cwo.dev/workload": "demo"])
        let owner = try #require(deployment[path: ["metadata", "ownerReferences"]]?.arrayValue?.first)
        #expect(owner == ["apiVersion": "cwo.dev/v1alpha1", "kind": "ConfidentialWorkload", "name": "demo", "uid": "uid-1", "controller": true, "blockOwnerDeletion": true])
        #expect(deployment[path: ["spec", "selector"]] == ["matchLabels": ["cwo.dev/workload": "demo"]])
        #expect(deployment[path: ["spec", "replicas"]] == 3)
    }

    @Test func podTemplateKeepsEverythingTheUserWroteAndAddsTheRuntime() throws {
        let template = try #require(try build()[path: ["spec", "template"]])
        #expect(template[path: ["metadata", "labels"]] == ["tier": "backend", "app.kubernetes.io/managed-by": "cwo", "cwo.dev/workload": "demo"])
        #expect(template[path: ["metadata", "annotations", "note"]] == "kept")
        #expect(template[path: ["metadata", "annotations", "cwo.dev/policy-hash"]]?.stringValue?.count == 64)
        #expect(template[path: ["spec", "runtimeClassName"]] == "kata-cc")
        // The workload's nodeSelector is merged in and wins on a clash.
        #expect(template[path: ["spec", "nodeSelector"]] == ["zone": "a", "workload": "confidential"])
        #expect(template[path: ["spec", "terminationGracePeriodSeconds"]] == 5)
        // The user's container is untouched; the attestation container comes after it (or first among init containers).
        #expect(template[path: ["spec", "containers"]]?.arrayValue?.first == userTemplate[path: ["spec", "containers"]]?.arrayValue?.first)
    }

    @Test func runtimeClassComesFromTheSpec() throws {
        let template = try #require(try build(["runtimeClassName": "kata-cc-isolation"])[path: ["spec", "template"]])
        #expect(template[path: ["spec", "runtimeClassName"]] == "kata-cc-isolation")
    }

    @Test func theSameWorkloadAlwaysBuildsTheSameBytes() throws {
        let first = try JSONCoding.encoder.encode(try build())
        for _ in 0..<20 { #expect(try JSONCoding.encoder.encode(try build()) == first) }
    }
}

@Suite struct StatusBuilderTests {
    func deployment(available: String?, generation: Int64 = 1, observed: Int64 = 1, ready: Int = 0) -> Deployment {
        var meta = ObjectMeta(name: "demo", namespace: "team")
        meta.generation = generation
        var status = DeploymentStatus()
        status.observedGeneration = observed
        status.replicas = 1
        status.readyReplicas = ready
        if let available {
            status.conditions = [DeploymentCondition(type: "Available", status: available, reason: available == "True" ? "MinimumReplicasAvailable" : "MinimumReplicasUnavailable", message: "m")]
        }
        return Deployment(metadata: meta, status: status)
    }

    func observe(runtimeClass: Bool = true, deployment: Deployment?, errors: SpecErrors? = nil) -> Observation {
        Observation(generation: 4, deploymentName: "demo", specErrors: errors, runtimeClassName: "kata-cc", runtimeClassExists: runtimeClass, deployment: deployment)
    }

    /// name -> (observation, expected Ready status and reason)
    @Test(arguments: [
        ("all good", true, "True", nil, ConditionStatus.true, "Ready"),
        ("runtime class missing", false, "True", nil, .false, "RuntimeClassNotFound"),
        ("deployment unavailable", true, "False", nil, .false, "MinimumReplicasUnavailable"),
        ("no deployment condition yet", true, nil, nil, .unknown, "DeploymentNotObserved"),
        ("invalid spec", true, "True", SpecErrors([SpecError("spec.x", "bad")]), .false, "InvalidSpec"),
    ] as [(String, Bool, String?, SpecErrors?, ConditionStatus, String)])
    func readySummarizesTheFirstBlockingCondition(name: String, runtimeClass: Bool, available: String?, errors: SpecErrors?, ready: ConditionStatus, reason: String) throws {
        let status = StatusBuilder.status(observe(runtimeClass: runtimeClass, deployment: deployment(available: available), errors: errors), previous: nil, now: "T0")
        let condition = try #require(status.condition("Ready"), "\(name)")
        #expect(condition.status == ready, "\(name)")
        #expect(condition.reason == reason, "\(name)")
        #expect(condition.observedGeneration == 4)
        #expect(status.observedGeneration == 4)
    }

    @Test func transitionTimeChangesOnlyWhenStatusFlips() throws {
        let first = StatusBuilder.status(observe(deployment: deployment(available: "False")), previous: nil, now: "T0")
        let same = StatusBuilder.status(observe(deployment: deployment(available: "False")), previous: first, now: "T1")
        #expect(same == first, "an unchanged world yields an identical status")
        let flipped = StatusBuilder.status(observe(deployment: deployment(available: "True", ready: 1)), previous: same, now: "T2")
        #expect(flipped.condition("DeploymentAvailable")?.lastTransitionTime == "T2")
        #expect(flipped.condition("RuntimeClassAvailable")?.lastTransitionTime == "T0")
        #expect(flipped.readyReplicas == 1)
    }

    @Test func reasonsAreCamelCaseAsTheSchemaRequires() throws {
        let pattern = /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/
        for available in ["True", "False", nil] as [String?] {
            for runtimeClass in [true, false] {
                let status = StatusBuilder.status(observe(runtimeClass: runtimeClass, deployment: deployment(available: available)), previous: nil, now: "T")
                for condition in status.conditions ?? [] { #expect(condition.reason.wholeMatch(of: pattern) != nil, "\(condition.reason)") }
            }
        }
    }
}
