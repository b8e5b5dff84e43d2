import KubernetesClient

/// `spec.policy`, understood.
public struct PolicySettings: Sendable, Hashable {
    public enum Mode: String, Sendable, Hashable { case generated = "Generated", provided = "Provided", allowAll = "AllowAll" }
    public var mode: Mode = .generated
    public var allowInsecure = false
    public var configMapName: String?
    public var configMapKey: String?
    public var allowedImages: [String]?
    public var allowedEnvVars: [String] = []
    /// Names image configs commonly set; any value is allowed for them (cwo does not read image configs).
    public var imageEnvVars: [String] = PolicySettings.defaultImageEnvVars
    public var allowPrivileged = false
    public var execCommands: [[String]] = []
    public var logs = true

    public init() {}

    /// The documented default for `policy.imageEnvVars`: variables base images set in their config.
    /// Loader variables (LD_PRELOAD, LD_LIBRARY_PATH) are deliberately absent.
    public static let defaultImageEnvVars = [
        "PATH", "HOME", "LANG", "LANGUAGE", "LC_ALL", "TZ", "TERM", "USER", "SHELL", "PWD",
        "SSL_CERT_FILE", "SSL_CERT_DIR", "GPG_KEY", "DEBIAN_FRONTEND", "PKG_RELEASE",
        "JAVA_HOME", "JAVA_VERSION", "JDK_VERSION", "PYTHON_VERSION", "PYTHON_SHA256", "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE", "PYTHONPATH", "PIP_NO_CACHE_DIR", "GOLANG_VERSION", "GOPATH", "GOTOOLCHAIN",
        "NODE_VERSION", "YARN_VERSION", "NODE_ENV", "NGINX_VERSION", "NJS_VERSION", "NJS_RELEASE",
        "DOTNET_VERSION", "ASPNET_VERSION", "DOTNET_RUNNING_IN_CONTAINER", "ASPNETCORE_HTTP_PORTS", "APP_UID",
        "RUBY_VERSION", "GEM_HOME", "BUNDLE_SILENCE_ROOT_WARNING", "RUSTUP_HOME", "CARGO_HOME", "RUST_VERSION",
    ]
}

/// `spec.images`, understood.
public struct ImageSettings: Sendable, Hashable {
    /// Containers run `repository@sha256:…` of their resolved image.
    public var lockDigests = true

    public init() {}

    static func parse(_ value: JSONValue?, errors: inout [SpecError]) -> ImageSettings {
        var settings = ImageSettings()
        guard let reader = FieldReader(value, path: "spec.images", errors: &errors) else { return settings }
        settings.lockDigests = reader.bool("lockDigests", &errors) ?? true
        return settings
    }
}

/// `spec.attestation`, understood.
public struct AttestationSettings: Sendable, Hashable {
    public enum Placement: String, Sendable, Hashable { case initContainer = "InitContainer", sidecar = "Sidecar" }
    public var enabled = true
    public var image = "mcr.microsoft.com/aci/skr:2.7"
    public var placement: Placement = .initContainer
    public var maaEndpoint: String?
    public var certCacheEndpointType = "LocalTHIM"
    public var certCacheEndpoint = "169.254.169.254/metadata/THIM/amd/certification"
    public var port = 8080
    public var resources: JSONValue = ["limits": ["cpu": "100m", "memory": "128Mi"]]

    public init() {}
}

/// `spec.keyVault`, understood.
public struct KeyVaultSettings: Sendable, Hashable {
    /// e.g. `https://myvault.vault.azure.net`
    public var url: String
    public var keyName: String
    public var clientID: String
    public var keyType = "RSA-HSM"
    public var keySize = 3072
    /// Who keeps the key's release policy in step with the policy hashes.
    public var releasePolicy: ReleasePolicyManagement = .unmanaged
    /// With `Managed`: create the key (exportable, with the release policy) when it does not exist.
    public var create = false

    public enum ReleasePolicyManagement: String, Sendable, Hashable {
        /// cwo publishes the policy in a ConfigMap; the user applies it.
        case unmanaged = "Unmanaged"
        /// cwo updates the key in Key Vault itself.
        case managed = "Managed"
    }

    /// The host name SKR wants (`akv_endpoint`), without scheme.
    public var host: String {
        var host = url
        for prefix in ["https://", "http://"] where host.hasPrefix(prefix) { host.removeFirst(prefix.count) }
        while host.hasSuffix("/") { host.removeLast() }
        return host
    }

    public var keyID: String { "https://\(host)/keys/\(keyName)" }
}

/// Reads typed fields of one JSON object, recording an error naming the field for each bad one.
struct FieldReader {
    let object: [String: JSONValue]
    let path: String

    init?(_ value: JSONValue?, path: String, errors: inout [SpecError]) {
        guard let value, !value.isNull else { return nil }
        guard let object = value.objectValue else {
            errors.append(SpecError(path, "must be an object"))
            return nil
        }
        self.object = object
        self.path = path
    }

    func field(_ key: String) -> String { "\(path).\(key)" }

    func string(_ key: String, _ errors: inout [SpecError]) -> String? {
        guard let value = object[key], !value.isNull else { return nil }
        guard let text = value.stringValue else {
            errors.append(SpecError(field(key), "must be a string"))
            return nil
        }
        return text
    }

    func bool(_ key: String, _ errors: inout [SpecError]) -> Bool? {
        guard let value = object[key], !value.isNull else { return nil }
        guard let flag = value.boolValue else {
            errors.append(SpecError(field(key), "must be true or false"))
            return nil
        }
        return flag
    }

    func int(_ key: String, _ range: ClosedRange<Int>, _ errors: inout [SpecError]) -> Int? {
        guard let value = object[key], !value.isNull else { return nil }
        guard let number = value.intValue, range.contains(number) else {
            errors.append(SpecError(field(key), "must be an integer from \(range.lowerBound) to \(range.upperBound)"))
            return nil
        }
        return number
    }

    func strings(_ key: String, _ errors: inout [SpecError]) -> [String]? {
        guard let value = object[key], !value.isNull else { return nil }
        guard let list = value.arrayValue, list.allSatisfy({ $0.stringValue != nil }) else {
            errors.append(SpecError(field(key), "must be a list of strings"))
            return nil
        }
        return list.compactMap(\.stringValue)
    }

    func oneOf<T: RawRepresentable<String>>(_ key: String, _ type: T.Type, _ errors: inout [SpecError]) -> T? {
        guard let text = string(key, &errors) else { return nil }
        guard let value = T(rawValue: text) else {
            errors.append(SpecError(field(key), "\"\(text)\" is not a valid value"))
            return nil
        }
        return value
    }
}

extension PolicySettings {
    static func parse(_ value: JSONValue?, errors: inout [SpecError]) -> PolicySettings {
        var settings = PolicySettings()
        guard let reader = FieldReader(value, path: "spec.policy", errors: &errors) else { return settings }
        settings.mode = reader.oneOf("mode", Mode.self, &errors) ?? .generated
        settings.allowInsecure = reader.bool("allowInsecure", &errors) ?? false
        if let ref = FieldReader(reader.object["configMapRef"], path: "spec.policy.configMapRef", errors: &errors) {
            let name = ref.string("name", &errors) ?? ""
            let key = ref.string("key", &errors) ?? ""
            if !Validation.isDNSSubdomain(name) { errors.append(SpecError("spec.policy.configMapRef.name", "must be a ConfigMap name")) }
            if key.isEmpty { errors.append(SpecError("spec.policy.configMapRef.key", "is required")) }
            settings.configMapName = name
            settings.configMapKey = key
        }
        settings.allowedImages = reader.strings("allowedImages", &errors)
        settings.allowedEnvVars = reader.strings("allowedEnvVars", &errors) ?? []
        settings.imageEnvVars = reader.strings("imageEnvVars", &errors) ?? defaultImageEnvVars
        settings.allowPrivileged = reader.bool("allowPrivileged", &errors) ?? false
        settings.logs = reader.bool("logs", &errors) ?? true
        if let exec = FieldReader(reader.object["exec"], path: "spec.policy.exec", errors: &errors), let commands = exec.object["commands"], !commands.isNull {
            let lists = commands.arrayValue?.map { $0.arrayValue?.compactMap(\.stringValue) }
            if let lists, lists.allSatisfy({ ($0?.isEmpty == false) }), lists.count == commands.arrayValue?.count,
                zip(lists, commands.arrayValue ?? []).allSatisfy({ $0?.count == $1.arrayValue?.count })
            {
                settings.execCommands = lists.compactMap { $0 }
            } else {
                errors.append(SpecError("spec.policy.exec.commands", "must be a list of non-empty argument lists"))
            }
        }
        for name in settings.allowedEnvVars + settings.imageEnvVars where !Validation.isEnvName(name) {
            errors.append(SpecError("spec.policy", "\"\(name)\" is not a valid environment variable name"))
        }
        switch settings.mode {
        case .allowAll where !settings.allowInsecure:
            errors.append(SpecError("spec.policy.mode", "AllowAll lets anyone with node access run anything in the VM; set spec.policy.allowInsecure: true to accept that"))
        case .provided where settings.configMapName == nil:
            errors.append(SpecError("spec.policy.configMapRef", "is required when mode is Provided"))
        default:
            break
        }
        return settings
    }
}

extension AttestationSettings {
    static func parse(_ value: JSONValue?, errors: inout [SpecError]) -> AttestationSettings {
        var settings = AttestationSettings()
        guard let reader = FieldReader(value, path: "spec.attestation", errors: &errors) else { return settings }
        settings.enabled = reader.bool("enabled", &errors) ?? true
        if let image = reader.string("image", &errors) {
            if image.isEmpty || image.contains(where: \.isWhitespace) {
                errors.append(SpecError("spec.attestation.image", "must be an image reference"))
            } else {
                settings.image = image
            }
        }
        settings.placement = reader.oneOf("placement", Placement.self, &errors) ?? .initContainer
        if let endpoint = reader.string("maaEndpoint", &errors) {
            // SKR wants a bare host name; accept a pasted URL but not a path.
            var host = endpoint
            for prefix in ["https://", "http://"] where host.hasPrefix(prefix) { host.removeFirst(prefix.count) }
            while host.hasSuffix("/") { host.removeLast() }
            if Validation.isDNSSubdomain(host.lowercased()) { settings.maaEndpoint = host.lowercased() } else {
                errors.append(SpecError("spec.attestation.maaEndpoint", "must be a host name, e.g. sharedeus.eus.attest.azure.net"))
            }
        }
        if let cache = FieldReader(reader.object["certCache"], path: "spec.attestation.certCache", errors: &errors) {
            if let type = cache.string("endpointType", &errors) {
                if ["LocalTHIM", "AzCache", "AMD"].contains(type) { settings.certCacheEndpointType = type } else {
                    errors.append(SpecError("spec.attestation.certCache.endpointType", "must be LocalTHIM, AzCache or AMD"))
                }
            }
            if let endpoint = cache.string("endpoint", &errors) { settings.certCacheEndpoint = endpoint }
        }
        settings.port = reader.int("port", 1...65535, &errors) ?? 8080
        if let resources = reader.object["resources"], !resources.isNull {
            if resources.objectValue != nil { settings.resources = resources } else {
                errors.append(SpecError("spec.attestation.resources", "must be an object"))
            }
        }
        return settings
    }
}

extension KeyVaultSettings {
    static func parse(_ value: JSONValue?, attestation: AttestationSettings, errors: inout [SpecError]) -> KeyVaultSettings? {
        guard let reader = FieldReader(value, path: "spec.keyVault", errors: &errors) else { return nil }
        let name = reader.string("name", &errors)
        let url = reader.string("url", &errors)
        var vaultURL = ""
        switch (name, url) {
        case (let name?, nil):
            if Validation.isDNSLabel(name.lowercased()) { vaultURL = "https://\(name.lowercased()).vault.azure.net" } else {
                errors.append(SpecError("spec.keyVault.name", "must be a vault name"))
            }
        case (nil, let url?):
            if url.hasPrefix("https://"), Validation.isHostAndPort(String(url.dropFirst(8).split(separator: "/").first ?? "")) {
                vaultURL = url
                while vaultURL.hasSuffix("/") { vaultURL.removeLast() }
            } else {
                errors.append(SpecError("spec.keyVault.url", "must be an https:// vault or Managed HSM URL"))
            }
        case (.some, .some):
            errors.append(SpecError("spec.keyVault", "give name or url, not both"))
        case (nil, nil):
            errors.append(SpecError("spec.keyVault", "name or url is required"))
        }
        let keyName = reader.string("keyName", &errors) ?? ""
        if keyName.isEmpty || !keyName.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) || keyName.count > 127 {
            errors.append(SpecError("spec.keyVault.keyName", "must be 1-127 letters, digits and '-'"))
        }
        let clientID = reader.string("clientID", &errors) ?? ""
        if clientID.isEmpty { errors.append(SpecError("spec.keyVault.clientID", "is required (the workload identity's client ID)")) }
        if !attestation.enabled {
            errors.append(SpecError("spec.keyVault", "needs the attestation container: spec.attestation.enabled must be true"))
        } else if attestation.maaEndpoint == nil {
            errors.append(SpecError("spec.attestation.maaEndpoint", "is required when spec.keyVault is set"))
        }
        var settings = KeyVaultSettings(url: vaultURL, keyName: keyName, clientID: clientID)
        if let type = reader.string("keyType", &errors) {
            if ["RSA-HSM", "RSA", "EC-HSM", "EC", "oct-HSM"].contains(type) { settings.keyType = type } else {
                errors.append(SpecError("spec.keyVault.keyType", "must be RSA-HSM, RSA, EC-HSM, EC or oct-HSM"))
            }
        }
        settings.keySize = reader.int("keySize", 128...8192, &errors) ?? 3072
        settings.releasePolicy = reader.oneOf("releasePolicy", ReleasePolicyManagement.self, &errors) ?? .unmanaged
        settings.create = reader.bool("create", &errors) ?? false
        if settings.create && settings.releasePolicy != .managed {
            errors.append(SpecError("spec.keyVault.create", "needs releasePolicy: Managed (cwo only creates keys whose release policy it manages)"))
        }
        return settings
    }
}

extension Validation {
    /// `host` or `host:port` (a vault behind a private endpoint or proxy may use a port).
    public static func isHostAndPort(_ text: String) -> Bool {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count <= 2, isDNSSubdomain(parts[0].lowercased()) else { return false }
        guard parts.count == 2 else { return true }
        return Int(parts[1]).map { (1...65535).contains($0) } ?? false
    }

    /// POSIX-portable environment variable names (what the policy can match by name).
    public static func isEnvName(_ text: String) -> Bool {
        guard let first = text.unicodeScalars.first, !text.isEmpty, text.utf8.count <= 256 else { return false }
        // ASCII letters, digits, `_`, `.`, `-` (compared as bytes: Unicode property lookups were 2 % of cwo's CPU).
        func ok(_ c: UInt8) -> Bool {
            switch c {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "-"): true
            default: false
            }
        }
        return !("0"..."9").contains(first) && text.utf8.allSatisfy(ok)
    }
}
