#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import KubernetesClient

/// The attestation (Secure Key Release) container and the one hostPath volume it needs.
public enum AttestationBuilder {
    public static let containerName = "attestation"
    public static let volumeName = "cwo-reference-info"
    /// The UVM endorsements SKR reads; AKS nodes provide the file.
    public static let referenceInfoPath = "/opt/confidential-containers/share/kata-containers/reference-info-base64"

    /// `SkrSideCarArgs`: base64 of the SKR service's `AzureInformation` JSON.
    public static func sideCarArgs(_ settings: AttestationSettings) -> String {
        let info: JSONValue = ["certcache": ["endpoint_type": .string(settings.certCacheEndpointType), "endpoint": .string(settings.certCacheEndpoint)]]
        return Data(CanonicalJSON.compact(info).utf8).base64EncodedString()
    }

    /// Where the container goes, given what the server supports: native sidecars need Kubernetes 1.29.
    public static func effectivePlacement(_ settings: AttestationSettings, nativeSidecars: Bool) -> AttestationSettings.Placement {
        settings.placement == .initContainer && !nativeSidecars ? .sidecar : settings.placement
    }

    public static func container(_ settings: AttestationSettings, placement: AttestationSettings.Placement) -> JSONValue {
        var container: JSONValue = [
            "name": .string(containerName),
            "image": .string(settings.image),
            "command": ["/skr.sh"],
            "env": [
                ["name": "SkrSideCarArgs", "value": .string(sideCarArgs(settings))],
                ["name": "Port", "value": .string(String(settings.port))],
            ],
            "volumeMounts": [["name": .string(volumeName), "mountPath": .string(referenceInfoPath), "readOnly": true]],
            "resources": settings.resources,
        ]
        if placement == .initContainer {
            // A native sidecar: it keeps running, and the app containers start once /status answers.
            container["restartPolicy"] = "Always"
            container["startupProbe"] = [
                "httpGet": ["path": "/status", "port": .number(Double(settings.port))],
                "periodSeconds": 1, "failureThreshold": 120,
            ]
        }
        return container
    }

    public static let volume: JSONValue = ["name": .string(volumeName), "hostPath": ["path": .string(referenceInfoPath), "type": "File"]]

    /// Adds the container and its volume to a pod template.
    static func add(to template: inout JSONValue, settings: AttestationSettings, placement: AttestationSettings.Placement) {
        var podSpec = template["spec"]?.objectValue ?? [:]
        let key = placement == .initContainer ? "initContainers" : "containers"
        var list = podSpec[key]?.arrayValue ?? []
        let container = container(settings, placement: placement)
        // Init containers run in order: the attestation service comes first so everything after can use it.
        if placement == .initContainer { list.insert(container, at: 0) } else { list.append(container) }
        podSpec[key] = .array(list)
        podSpec["volumes"] = .array((podSpec["volumes"]?.arrayValue ?? []) + [volume])
        template["spec"] = .object(podSpec)
    }
}

/// The Key Vault binding: the pod's workload identity, the SKR client env, and the release policy.
public enum KeyVaultBuilder {
    public static let workloadIdentityLabel = "azure.workload.identity/use"
    public static let clientIDAnnotation = "azure.workload.identity/client-id"
    public static let releasePolicyKey = "release-policy.json"

    public static func configMapName(workload: String) -> String { "\(workload)-key-release" }

    /// Adds the identity label, the service account and the SKR client variables to app containers.
    static func bind(_ template: inout JSONValue, workload: String, settings: KeyVaultSettings, maaEndpoint: String) {
        var metadata = template["metadata"]?.objectValue ?? [:]
        var labels = metadata["labels"]?.objectValue ?? [:]
        labels[workloadIdentityLabel] = "true"
        metadata["labels"] = .object(labels)
        template["metadata"] = .object(metadata)

        var podSpec = template["spec"]?.objectValue ?? [:]
        podSpec["serviceAccountName"] = .string(workload)
        // The deprecated alias too: the API server copies it into serviceAccountName whenever that is
        // empty, so unless cwo owns both, switching Key Vault off could never take the account off the pods.
        podSpec["serviceAccount"] = .string(workload)
        let additions: [JSONValue] = [
            ["name": "SkrClientKID", "value": .string(settings.keyName)],
            ["name": "SkrClientAKVEndpoint", "value": .string(settings.host)],
            ["name": "SkrClientMAAEndpoint", "value": .string(maaEndpoint)],
        ]
        let added = Set(["SkrClientKID", "SkrClientAKVEndpoint", "SkrClientMAAEndpoint"])
        podSpec["containers"] = .array((podSpec["containers"]?.arrayValue ?? []).map { container in
            guard container["name"]?.stringValue != AttestationBuilder.containerName else { return container }
            var container = container
            // cwo's values replace any the user wrote for these names, so the three always agree with spec.keyVault.
            let kept = (container["env"]?.arrayValue ?? []).filter { !added.contains($0["name"]?.stringValue ?? "") }
            container["env"] = .array(kept + additions)
            return container
        })
        template["spec"] = .object(podSpec)
    }

    public static func serviceAccount(for workload: ConfidentialWorkload, settings: KeyVaultSettings) -> JSONValue {
        let name = workload.metadata.name ?? ""
        return [
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": [
                "name": .string(name), "namespace": .string(workload.metadata.namespace ?? ""),
                "labels": .object(DeploymentBuilder.labels(workload: name)),
                "annotations": [clientIDAnnotation: .string(settings.clientID)],
                "ownerReferences": [DeploymentBuilder.ownerReference(workload)],
            ],
        ]
    }

    /// The Key Vault key release policy: one authority entry per allowed policy hash (two during a rollout).
    public static func releasePolicy(maaEndpoint: String, hashes: [String]) -> JSONValue {
        [
            "version": "1.0.0",
            "anyOf": .array(hashes.map { hash in
                [
                    "authority": .string("https://\(maaEndpoint)"),
                    "allOf": [
                        ["claim": "x-ms-attestation-type", "equals": "sevsnpvm"],
                        ["claim": "x-ms-compliance-status", "equals": "azure-signed-katacc-uvm"],
                        ["claim": "x-ms-sevsnpvm-is-debuggable", "equals": "false"],
                        ["claim": .string(ReleasePolicyEdit.hostDataClaim), "equals": .string(hash)],
                    ],
                ]
            }),
        ]
    }

    /// The command that creates the key with this release policy (or adds a version with it).
    public static func azCommand(_ settings: KeyVaultSettings, policyFile: String = "release-policy.json") -> String {
        "az keyvault key create --id \(settings.keyID) --kty \(settings.keyType) --size \(settings.keySize) --ops wrapKey unwrapKey encrypt decrypt --exportable --policy \(policyFile)"
    }

    public static func configMap(for workload: ConfidentialWorkload, settings: KeyVaultSettings, maaEndpoint: String, hashes: [String]) -> JSONValue {
        let name = workload.metadata.name ?? ""
        return [
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": [
                "name": .string(configMapName(workload: name)), "namespace": .string(workload.metadata.namespace ?? ""),
                "labels": .object(DeploymentBuilder.labels(workload: name)),
                "ownerReferences": [DeploymentBuilder.ownerReference(workload)],
            ],
            "data": [
                releasePolicyKey: .string(CanonicalJSON.pretty(releasePolicy(maaEndpoint: maaEndpoint, hashes: hashes)) + "\n"),
                "key-id": .string(settings.keyID),
                "apply.sh": .string(azCommand(settings) + "\n"),
            ],
        ]
    }
}
