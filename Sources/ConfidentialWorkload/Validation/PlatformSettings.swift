import KubernetesClient

/// Which confidential platform runs a workload's pods.
public enum Platform: String, Sendable, Hashable {
    /// AKS's Confidential Containers (runtime class `kata-cc`): policy annotation, SKR attestation
    /// container, Azure Key Vault.
    case aks = "AKS"
    /// Upstream Confidential Containers (`kata-qemu-snp`, `kata-qemu-tdx`, `kata-remote`, ...): the policy
    /// inside measured initdata, secrets from a Trustee KBS.
    case coco = "CoCo"

    /// The platform a runtime class belongs to when `spec.platform` is unset. Runtime classes cwo does
    /// not know stay on AKS (cwo's behaviour before there was a choice).
    public static func of(runtimeClass name: String) -> Platform {
        cocoRuntimeClasses.contains(name) || name.hasPrefix("kata-qemu-") || name.hasPrefix("kata-remote") ? .coco : .aks
    }

    static let cocoRuntimeClasses: Set<String> = [
        "kata-qemu-snp", "kata-qemu-tdx", "kata-qemu-coco-dev", "kata-remote", "kata-qemu-nvidia-gpu-snp", "kata-qemu-nvidia-gpu-tdx",
    ]
}

/// The trusted execution environment a CoCo pod runs in: where its initdata digest is measured.
public enum TEE: String, Sendable, Hashable, CaseIterable {
    /// AMD SEV-SNP: `HOST_DATA`, 32 bytes.
    case snp
    /// Intel TDX: `MRCONFIGID`, 48 bytes.
    case tdx
    /// Peer pods on Azure confidential VMs: the digest extends vTPM PCR8.
    case azSNPvTPM = "az-snp-vtpm"
    /// `kata-qemu-coco-dev`: no TEE, nothing measured (for testing only).
    case none

    /// The TEE of a runtime class (nil: cwo cannot tell, `spec.coco.tee` must say).
    static func of(runtimeClass name: String) -> TEE? {
        if name.hasSuffix("-snp") { return .snp }
        if name.hasSuffix("-tdx") { return .tdx }
        if name == "kata-qemu-coco-dev" { return TEE.none }
        return nil
    }
}

/// `spec.coco`: how the initdata document is written.
public struct CoCoSettings: Sendable, Hashable {
    public enum Algorithm: String, Sendable, Hashable, CaseIterable {
        case sha256, sha384, sha512
    }

    public enum AnnotationStyle: String, Sendable, Hashable {
        /// `io.katacontainers.config.hypervisor.cc_init_data` (CoCo 0.16 and later).
        case current = "Current"
        /// `io.katacontainers.config.runtime.cc_init_data` (CoCo before 0.16).
        case legacy = "Legacy"
    }

    public var algorithm: Algorithm = .sha384
    public var annotation: AnnotationStyle = .current
    /// Extra `[data]` entries (file name → content), besides policy.rego, aa.toml and cdh.toml.
    public var extraData: [String: String] = [:]
    public var tee: TEE = .snp

    public init() {}
}

/// `spec.kbs`: the Trustee key broker this workload's secrets come from.
public struct KBSSettings: Sendable, Hashable {
    /// e.g. `https://kbs.confidential.svc:8080`
    public var url: String
    /// ConfigMap (name, key) with the KBS's CA certificate (PEM), for the guest to trust it.
    public var caConfigMap: (name: String, key: String)?
    public var resources: [Resource]

    public struct Resource: Sendable, Hashable {
        /// `repository/type/tag`
        public var path: String
        /// A Secret (name, key) whose value cwo uploads as the resource.
        public var secret: SecretKey?
    }

    public struct SecretKey: Sendable, Hashable {
        public var name: String
        public var key: String
    }

    public static func == (lhs: KBSSettings, rhs: KBSSettings) -> Bool {
        lhs.url == rhs.url && lhs.caConfigMap?.name == rhs.caConfigMap?.name && lhs.caConfigMap?.key == rhs.caConfigMap?.key
            && lhs.resources == rhs.resources
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(url)
        hasher.combine(caConfigMap?.name)
        hasher.combine(caConfigMap?.key)
        hasher.combine(resources)
    }
}

extension CoCoSettings {
    static func parse(_ value: JSONValue?, runtimeClass: String, errors: inout [SpecError]) -> CoCoSettings {
        var settings = CoCoSettings()
        let reader = FieldReader(value, path: "spec.coco", errors: &errors)
        let initData = reader.flatMap { FieldReader($0.object["initData"], path: "spec.coco.initData", errors: &errors) }
        if let initData {
            settings.algorithm = initData.oneOf("algorithm", Algorithm.self, &errors) ?? .sha384
            settings.annotation = initData.oneOf("annotation", AnnotationStyle.self, &errors) ?? .current
            if let extra = initData.object["extraData"], !extra.isNull {
                if let entries = extra.objectValue, entries.values.allSatisfy({ $0.stringValue != nil }) {
                    for (name, content) in entries {
                        if InitData.reservedEntries.contains(name) {
                            errors.append(SpecError("spec.coco.initData.extraData[\(name)]", "is written by cwo; choose another name"))
                        } else {
                            settings.extraData[name] = content.stringValue
                        }
                    }
                } else {
                    errors.append(SpecError("spec.coco.initData.extraData", "must be a map of file names to text"))
                }
            }
        }
        if let tee = reader?.oneOf("tee", TEE.self, &errors) {
            settings.tee = tee
        } else if let tee = TEE.of(runtimeClass: runtimeClass) {
            settings.tee = tee
        } else if runtimeClass.hasPrefix("kata-remote") {
            // Peer pods: on Azure the confidential VM's vTPM measures initdata.
            settings.tee = .azSNPvTPM
        } else {
            errors.append(SpecError("spec.coco.tee", "runtime class \(runtimeClass) does not say which TEE runs the pods: set snp, tdx, az-snp-vtpm or none"))
        }
        return settings
    }
}

extension KBSSettings {
    static func parse(_ value: JSONValue?, errors: inout [SpecError]) -> KBSSettings? {
        guard let reader = FieldReader(value, path: "spec.kbs", errors: &errors) else { return nil }
        var url = reader.string("url", &errors) ?? ""
        while url.hasSuffix("/") { url.removeLast() }
        let scheme = url.hasPrefix("https://") ? 8 : url.hasPrefix("http://") ? 7 : 0
        if scheme == 0 || !Validation.isHostAndPort(String(url.dropFirst(scheme).split(separator: "/").first ?? "")) {
            errors.append(SpecError("spec.kbs.url", "must be the KBS's http(s):// URL, e.g. https://kbs.confidential.svc:8080"))
        }
        var settings = KBSSettings(url: url, caConfigMap: nil, resources: [])
        if let ca = FieldReader(reader.object["caConfigMapRef"], path: "spec.kbs.caConfigMapRef", errors: &errors) {
            let name = ca.string("name", &errors) ?? ""
            let key = ca.string("key", &errors) ?? ""
            if name.isEmpty || key.isEmpty { errors.append(SpecError("spec.kbs.caConfigMapRef", "needs name and key")) }
            settings.caConfigMap = (name, key)
        }
        if let list = reader.object["resources"], !list.isNull {
            guard let items = list.arrayValue else {
                errors.append(SpecError("spec.kbs.resources", "must be a list"))
                return settings
            }
            var seen: Set<String> = []
            for (index, item) in items.enumerated() {
                guard let entry = FieldReader(item, path: "spec.kbs.resources[\(index)]", errors: &errors) else { continue }
                let path = entry.string("path", &errors) ?? ""
                let parts = path.split(separator: "/", omittingEmptySubsequences: false)
                if parts.count != 3 || parts.contains(where: { $0.isEmpty || !$0.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) } }) {
                    errors.append(SpecError(entry.field("path"), "must be repository/type/tag (letters, digits, '-', '_', '.')"))
                    continue
                }
                if !seen.insert(path).inserted { errors.append(SpecError(entry.field("path"), "\(path) is listed twice")) }
                var resource = Resource(path: path, secret: nil)
                if let secret = FieldReader(entry.object["secretRef"], path: entry.field("secretRef"), errors: &errors) {
                    let name = secret.string("name", &errors) ?? ""
                    let key = secret.string("key", &errors) ?? ""
                    if name.isEmpty || key.isEmpty { errors.append(SpecError(entry.field("secretRef"), "needs name and key")) }
                    resource.secret = SecretKey(name: name, key: key)
                }
                settings.resources.append(resource)
            }
        }
        return settings
    }
}
