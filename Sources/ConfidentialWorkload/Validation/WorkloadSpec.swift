import KubernetesClient

/// The understood form of a workload's `spec`, made by `WorkloadSpec.parse` from the raw JSON.
public struct WorkloadSpec: Sendable, Hashable {
    public var replicas: Int
    public var runtimeClassName: String
    public var nodeSelector: [String: String]
    /// The user's pod template, exactly as written.
    public var template: JSONValue
    public var containers: [ContainerView]
    public var initContainers: [ContainerView]
    public var policy: PolicySettings
    public var images: ImageSettings
    public var attestation: AttestationSettings
    public var keyVault: KeyVaultSettings?
    /// Which platform runs the pods: `spec.platform`, or the runtime class's.
    public var platform: Platform
    /// CoCo only: how initdata is written.
    public var coco: CoCoSettings?
    /// CoCo only: the Trustee key broker this workload's secrets come from.
    public var kbs: KBSSettings?
    /// Things that work but deserve attention (missing memory limits, unpinned images).
    public var warnings: [String]
}

/// What cwo reads of one container of the template.
public struct ContainerView: Sendable, Hashable {
    public var name: String
    public var image: String

    public init(name: String, image: String) {
        self.name = name
        self.image = image
    }
}

/// A spec that the schema accepts but cwo cannot run: the field and why.
public struct SpecError: Error, Sendable, Hashable, CustomStringConvertible {
    public var field: String
    public var message: String
    public var reason: String

    public init(_ field: String, _ message: String, reason: String = Reason.invalidSpec) {
        self.field = field
        self.message = message
        self.reason = reason
    }

    public var description: String { "\(field): \(message)" }
}

extension WorkloadSpec {
    /// Reads and checks a workload's spec; every problem found is returned, each naming its field.
    /// `resolved`: the images the registry resolved (they run by digest when `spec.images.lockDigests`,
    /// so they need no advice to pin them).
    public static func parse(_ workload: ConfidentialWorkload, resolved: Set<String> = []) -> Result<WorkloadSpec, SpecErrors> {
        var errors: [SpecError] = []
        let name = workload.metadata.name ?? ""
        // The name is the value of the selector label, and label values stop at 63 characters.
        if name.utf8.count > 63 {
            errors.append(SpecError("metadata.name", "is \(name.utf8.count) characters; at most 63 fit in the \(Names.workloadLabel) label"))
        }
        guard let spec = workload.spec?.objectValue else {
            return .failure(SpecErrors([SpecError("spec", "is missing or not an object")]))
        }

        var replicas = 1
        if let value = spec["replicas"], !value.isNull {
            if let number = value.intValue, number >= 0, number <= Int(Int32.max) { replicas = number } else {
                errors.append(SpecError("spec.replicas", "must be an integer of at least 0"))
            }
        }

        var runtimeClassName = Names.defaultRuntimeClass
        if let value = spec["runtimeClassName"], !value.isNull {
            if let text = value.stringValue, Validation.isDNSSubdomain(text) { runtimeClassName = text } else {
                errors.append(SpecError("spec.runtimeClassName", "must be a DNS subdomain name"))
            }
        }

        var nodeSelector: [String: String] = [:]
        if let value = spec["nodeSelector"], !value.isNull {
            if let object = value.objectValue {
                for (key, entry) in object.sorted(by: { $0.key < $1.key }) {
                    guard let text = entry.stringValue else {
                        errors.append(SpecError("spec.nodeSelector[\(key)]", "must be a string"))
                        continue
                    }
                    nodeSelector[key] = text
                }
            } else {
                errors.append(SpecError("spec.nodeSelector", "must be a map of strings"))
            }
        }

        var containers: [ContainerView] = []
        var initContainers: [ContainerView] = []
        let template = spec["template"] ?? .null
        if template.objectValue == nil {
            errors.append(SpecError("spec.template", "is required and must be a pod template"))
        } else {
            if let labels = template[path: ["metadata", "labels"]], !labels.isNull {
                if let object = labels.objectValue {
                    if let value = object[Names.workloadLabel], value.stringValue != name {
                        errors.append(SpecError("spec.template.metadata.labels[\(Names.workloadLabel)]", "must be \"\(name)\" or unset: cwo selects the workload's pods by it"))
                    }
                    for (key, value) in object where value.stringValue == nil {
                        errors.append(SpecError("spec.template.metadata.labels[\(key)]", "must be a string"))
                    }
                } else {
                    errors.append(SpecError("spec.template.metadata.labels", "must be a map of strings"))
                }
            }
            if let annotations = template[path: ["metadata", "annotations"]], !annotations.isNull {
                if let object = annotations.objectValue {
                    for (key, value) in object where value.stringValue == nil {
                        errors.append(SpecError("spec.template.metadata.annotations[\(key)]", "must be a string"))
                    }
                } else {
                    errors.append(SpecError("spec.template.metadata.annotations", "must be a map of strings"))
                }
            }
            let podSpec = template["spec"]
            if podSpec?.objectValue == nil {
                errors.append(SpecError("spec.template.spec", "is required and must be a pod spec"))
            } else {
                containers = readContainers(podSpec?["containers"], field: "spec.template.spec.containers", required: true, into: &errors)
                initContainers = readContainers(podSpec?["initContainers"], field: "spec.template.spec.initContainers", required: false, into: &errors)
                var seen: Set<String> = []
                for container in initContainers + containers where !seen.insert(container.name).inserted {
                    errors.append(SpecError("spec.template.spec", "container name \"\(container.name)\" is used twice"))
                }
            }
        }

        let policy = PolicySettings.parse(spec["policy"], errors: &errors)
        let images = ImageSettings.parse(spec["images"], errors: &errors)
        var platform = Platform.of(runtimeClass: runtimeClassName)
        if let value = spec["platform"], !value.isNull {
            if let text = value.stringValue, let chosen = Platform(rawValue: text) { platform = chosen } else {
                errors.append(SpecError("spec.platform", "must be AKS or CoCo"))
            }
        }
        var attestation = AttestationSettings.parse(spec["attestation"], errors: &errors)
        var keyVault: KeyVaultSettings?
        var coco: CoCoSettings?
        var kbs: KBSSettings?
        // Fields of the other platform are errors, never silently ignored.
        func foreign(_ field: String, _ why: String) {
            if let value = spec[field], !value.isNull { errors.append(SpecError("spec.\(field)", why)) }
        }
        switch platform {
        case .aks:
            keyVault = KeyVaultSettings.parse(spec["keyVault"], attestation: attestation, errors: &errors)
            let on = "belongs to platform CoCo, and this workload runs on AKS (runtime class \(runtimeClassName)); set spec.platform: CoCo with a CoCo runtime class such as kata-qemu-snp"
            foreign("coco", on)
            foreign("kbs", on)
        case .coco:
            coco = CoCoSettings.parse(spec["coco"], runtimeClass: runtimeClassName, errors: &errors)
            kbs = KBSSettings.parse(spec["kbs"], errors: &errors)
            foreign("keyVault", "belongs to AKS; on CoCo (runtime class \(runtimeClassName)) secrets come from a Trustee KBS: use spec.kbs")
            if attestation.maaEndpoint != nil {
                errors.append(SpecError("spec.attestation.maaEndpoint", "belongs to AKS; on CoCo the guest's own attestation agent attests to the KBS in spec.kbs"))
            }
            // The guest attests itself (its attestation agent, configured by initdata): no SKR container.
            attestation.enabled = false
        }
        var warnings: [String] = []
        if template.objectValue != nil {
            PodRules.check(template: template, policy: policy, lockedImages: images.lockDigests ? resolved : [], errors: &errors, warnings: &warnings)
        }

        if !errors.isEmpty { return .failure(SpecErrors(errors)) }
        return .success(WorkloadSpec(
            replicas: replicas, runtimeClassName: runtimeClassName, nodeSelector: nodeSelector, template: template,
            containers: containers, initContainers: initContainers, policy: policy, images: images, attestation: attestation, keyVault: keyVault,
            platform: platform, coco: coco, kbs: kbs, warnings: warnings))
    }

    private static func readContainers(_ value: JSONValue?, field: String, required: Bool, into errors: inout [SpecError]) -> [ContainerView] {
        guard let value, !value.isNull else {
            if required { errors.append(SpecError(field, "at least one container is required")) }
            return []
        }
        guard let list = value.arrayValue else {
            errors.append(SpecError(field, "must be a list of containers"))
            return []
        }
        if required && list.isEmpty { errors.append(SpecError(field, "at least one container is required")) }
        var result: [ContainerView] = []
        for (index, item) in list.enumerated() {
            guard item.objectValue != nil else {
                errors.append(SpecError("\(field)[\(index)]", "must be a container object"))
                continue
            }
            guard let name = item["name"]?.stringValue, Validation.isDNSLabel(name) else {
                errors.append(SpecError("\(field)[\(index)].name", "must be a DNS label (lowercase letters, digits and '-', at most 63)"))
                continue
            }
            guard let image = item["image"]?.stringValue, !image.isEmpty, !image.contains(where: \.isWhitespace) else {
                errors.append(SpecError("\(field)[\(index)].image", "is required and must be an image reference"))
                continue
            }
            result.append(ContainerView(name: name, image: image))
        }
        return result
    }
}

/// All the problems of one spec, in the order found.
public struct SpecErrors: Error, Sendable, Hashable, CustomStringConvertible {
    public var errors: [SpecError]
    public init(_ errors: [SpecError]) { self.errors = errors }
    public var reason: String { errors.first?.reason ?? Reason.invalidSpec }
    public var description: String { errors.map(\.description).joined(separator: "; ") }
}

public enum Validation {
    /// RFC 1123 label: what container names and label values need.
    public static func isDNSLabel(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard (1...63).contains(bytes.count) else { return false }
        func alnum(_ b: UInt8) -> Bool { (b >= 97 && b <= 122) || (b >= 48 && b <= 57) }
        guard let first = bytes.first, let last = bytes.last, alnum(first), alnum(last) else { return false }
        return bytes.allSatisfy { alnum($0) || $0 == 45 }
    }

    /// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
    public static func isDNSSubdomain(_ text: String) -> Bool {
        guard (1...253).contains(text.utf8.count) else { return false }
        return text.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { isDNSLabel(String($0)) }
    }
}
