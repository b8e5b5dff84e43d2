import FoundationExtras
import KubernetesClient

/// What the confidential runtime cannot run (errors) or runs badly (warnings), read from the user's template.
enum PodRules {
    /// Volume types the policy generator and the Kata runtime support. hostPath is not among them:
    /// the only host path a confidential pod gets is the one cwo adds for attestation.
    static let supportedVolumeTypes: Set<String> = [
        "emptyDir", "configMap", "secret", "projected", "downwardAPI", "persistentVolumeClaim", "azureFile", "ephemeral",
    ]

    /// `lockedImages` run by digest whatever the template says: no advice to pin them.
    static func check(template: JSONValue, policy: PolicySettings, lockedImages: Set<String> = [], errors: inout [SpecError], warnings: inout [String]) {
        let podSpec = template["spec"] ?? [:]
        for (key, _) in template[path: ["metadata", "annotations"]]?.objectValue ?? [:] {
            if key.hasPrefix("io.katacontainers.config.hypervisor.") {
                errors.append(SpecError(
                    "spec.template.metadata.annotations[\(key)]",
                    "hypervisor annotations are refused by the confidential runtime; the VM is sized from container limits"))
            } else if key == AgentPolicy.annotationKey || key == AgentPolicy.hashAnnotationKey {
                errors.append(SpecError("spec.template.metadata.annotations[\(key)]", "is set by cwo; use spec.policy instead"))
            }
        }
        if podSpec["shareProcessNamespace"]?.boolValue == true {
            errors.append(SpecError("spec.template.spec.shareProcessNamespace", "is not supported by the confidential runtime (the agent policy forbids a shared PID namespace)"))
        }
        for (index, volume) in (podSpec["volumes"]?.arrayValue ?? []).enumerated() {
            let types = (volume.objectValue ?? [:]).keys.filter { $0 != "name" }
            for type in types where !supportedVolumeTypes.contains(type) {
                let why = type == "hostPath" ? "hostPath volumes are not allowed in a confidential pod" : "volume type \(type) is not supported by the confidential runtime"
                errors.append(SpecError("spec.template.spec.volumes[\(index)].\(type)", why))
            }
        }
        for (list, field) in [("initContainers", "spec.template.spec.initContainers"), ("containers", "spec.template.spec.containers")] {
            for (index, container) in (podSpec[list]?.arrayValue ?? []).enumerated() {
                let name = container["name"]?.stringValue ?? ""
                let path = "\(field)[\(index)]"
                if name == AttestationBuilder.containerName {
                    errors.append(SpecError("\(path).name", "\"attestation\" is the name of the container cwo adds; rename this one"))
                }
                for (mountIndex, mount) in (container["volumeMounts"]?.arrayValue ?? []).enumerated() {
                    for key in ["subPath", "subPathExpr"] where !(mount[key]?.stringValue ?? "").isEmpty {
                        errors.append(SpecError("\(path).volumeMounts[\(mountIndex)].\(key)", "subPath mounts are not supported by the confidential runtime"))
                    }
                }
                if container[path: ["securityContext", "privileged"]]?.boolValue == true, !policy.allowPrivileged {
                    errors.append(SpecError("\(path).securityContext.privileged", "privileged containers need spec.policy.allowPrivileged: true"))
                }
                let image = container["image"]?.stringValue ?? ""
                if let allowed = policy.allowedImages, !allowed.contains(image) {
                    errors.append(SpecError("\(path).image", "\(image) is not in spec.policy.allowedImages"))
                }
                if container[path: ["resources", "limits", "memory"]] == nil {
                    warnings.append("container \(name) has no memory limit: the pod VM is sized from limits (2 GiB for the guest plus the sum of limits)")
                }
                if !image.containsBytes("@sha256:"), !lockedImages.contains(image) {
                    let last = image.split(separator: "/").last.map(String.init) ?? image
                    if !last.containsBytes(":") || last.hasSuffix(":latest") {
                        warnings.append("image \(image) is tagged latest (or untagged): pin it by digest")
                    } else {
                        warnings.append("image \(image) is not pinned by digest")
                    }
                }
            }
        }
    }
}
