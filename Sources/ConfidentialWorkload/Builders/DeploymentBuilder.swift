import KubernetesClient

/// The Deployment cwo applies for a workload: a pure function of the workload.
public enum DeploymentBuilder {
    /// The labels cwo puts on the Deployment and on its pods.
    public static func labels(workload name: String) -> [String: JSONValue] {
        [Names.managedByLabel: .string(Names.managedByValue), Names.workloadLabel: .string(name)]
    }

    public static func ownerReference(_ workload: ConfidentialWorkload) -> JSONValue {
        [
            "apiVersion": .string(ConfidentialWorkload.apiVersion), "kind": .string(ConfidentialWorkload.kind),
            "name": .string(workload.metadata.name ?? ""), "uid": .string(workload.metadata.uid ?? ""),
            "controller": true, "blockOwnerDeletion": true,
        ]
    }

    /// The server-side-apply body: only the fields cwo owns.
    ///
    /// The pod template is the user's, with cwo's labels added, the runtime class set and the
    /// workload's nodeSelector merged in (it wins on a clash). Nothing else of the template is touched.
    public static func deployment(for workload: ConfidentialWorkload, spec: WorkloadSpec, podTemplate: JSONValue? = nil) -> JSONValue {
        let name = workload.metadata.name ?? ""
        let template = podTemplate ?? self.podTemplate(for: workload, spec: spec)
        return [
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": [
                "name": .string(name),
                "namespace": .string(workload.metadata.namespace ?? ""),
                "labels": .object(labels(workload: name)),
                "ownerReferences": [ownerReference(workload)],
            ],
            "spec": [
                "replicas": .number(Double(spec.replicas)),
                "selector": ["matchLabels": [Names.workloadLabel: .string(name)]],
                "template": template,
            ],
        ]
    }

    /// The user's template plus what every confidential pod needs.
    public static func podTemplate(for workload: ConfidentialWorkload, spec: WorkloadSpec) -> JSONValue {
        let name = workload.metadata.name ?? ""
        var template = spec.template
        var metadata = template["metadata"]?.objectValue ?? [:]
        var labels = metadata["labels"]?.objectValue ?? [:]
        labels.merge(self.labels(workload: name)) { _, ours in ours }
        metadata["labels"] = .object(labels)
        template["metadata"] = .object(metadata)

        var podSpec = template["spec"]?.objectValue ?? [:]
        podSpec["runtimeClassName"] = .string(spec.runtimeClassName)
        if !spec.nodeSelector.isEmpty {
            var selector = podSpec["nodeSelector"]?.objectValue ?? [:]
            for (key, value) in spec.nodeSelector { selector[key] = .string(value) }
            podSpec["nodeSelector"] = .object(selector)
        }
        template["spec"] = .object(podSpec)
        return template
    }
}
