#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Registry credentials from image pull secrets, matched to an image the way the kubelet matches them:
/// by the registry host (`*.` may stand for one leading label), then by the longest path prefix.
///
/// Reads both secret formats Kubernetes knows: `kubernetes.io/dockerconfigjson` (`{"auths": {...}}`)
/// and the legacy `kubernetes.io/dockercfg` (the entries alone). Each entry gives `username` and
/// `password`, or `auth` (base64 of `username:password`). Credentials never appear in descriptions.
public struct PullSecrets: Sendable, Hashable {
    struct Entry: Sendable, Hashable {
        var host: String
        var path: String
        var credentials: RegistryClient.Credentials
    }

    private var entries: [Entry] = []

    public init() {}

    /// Adds the entries of one secret's data value (the bytes of `.dockerconfigjson` or `.dockercfg`);
    /// earlier secrets win over later ones for the same registry, as with the kubelet's list order.
    public mutating func add(secretData bytes: [UInt8]) throws(PullSecretError) {
        struct Auth: Decodable {
            var username: String?
            var password: String?
            var auth: String?
        }
        struct Config: Decodable { var auths: [String: Auth] }
        let data = Data(bytes)
        let auths: [String: Auth]
        if let config = try? JSONDecoder().decode(Config.self, from: data) {
            auths = config.auths
        } else if let legacy = try? JSONDecoder().decode([String: Auth].self, from: data) {
            auths = legacy
        } else {
            throw PullSecretError(message: "not a docker config: expected a JSON object of registries (under \"auths\")")
        }
        for (server, auth) in auths.sorted(by: { $0.key < $1.key }) {
            guard let credentials = Self.credentials(auth.username, auth.password, auth.auth) else {
                throw PullSecretError(message: "the entry for \(Self.location(server).host) has neither username/password nor a valid auth")
            }
            let (host, path) = Self.location(server)
            guard !entries.contains(where: { $0.host == host && $0.path == path }) else { continue }
            entries.append(Entry(host: host, path: path, credentials: credentials))
        }
    }

    /// Adds `other`'s entries for registries (and paths) not given yet.
    public mutating func merge(_ other: PullSecrets) {
        for entry in other.entries where !entries.contains(where: { $0.host == entry.host && $0.path == entry.path }) {
            entries.append(entry)
        }
    }

    public var isEmpty: Bool { entries.isEmpty }

    /// The credentials for `image`, nil when no entry matches its registry (then access is anonymous).
    public func credentials(for image: ImageReference) -> RegistryClient.Credentials? {
        let host = ImageReference.dockerHub.contains(image.registry) ? "docker.io" : image.registry
        let path = "/" + image.repository
        return entries
            .filter { Self.hostMatches($0.host, host) && (path + "/").hasPrefix($0.path.isEmpty ? "/" : $0.path + "/") }
            .max { $0.path.count < $1.path.count }?.credentials
    }

    /// `https://index.docker.io/v1/` → (`docker.io`, ``); `registry.example:5000/team` → (`registry.example:5000`, `/team`).
    static func location(_ server: String) -> (host: String, path: String) {
        var rest = Substring(server)
        for scheme in ["https://", "http://"] where rest.hasPrefix(scheme) { rest = rest.dropFirst(scheme.count) }
        while rest.hasSuffix("/") { rest = rest.dropLast() }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        var host = rest[..<slash].lowercased()
        var path = String(rest[slash...])
        if ImageReference.dockerHub.contains(host) || host == "registry-1.docker.io" {
            host = "docker.io"
            if path == "/v1" || path == "/v2" { path = "" }
        }
        return (host, path)
    }

    static func hostMatches(_ pattern: String, _ host: String) -> Bool {
        guard pattern.hasPrefix("*.") else { return pattern == host }
        guard let dot = host.firstIndex(of: ".") else { return false }
        return host[dot...] == pattern.dropFirst()
    }

    static func credentials(_ username: String?, _ password: String?, _ auth: String?) -> RegistryClient.Credentials? {
        if let username, let password, !username.isEmpty { return .init(username: username, password: password) }
        guard let auth, let decoded = Data(base64Encoded: auth).map({ String(decoding: $0, as: UTF8.self) }),
              let colon = decoded.firstIndex(of: ":"), colon != decoded.startIndex else { return nil }
        return .init(username: String(decoded[..<colon]), password: String(decoded[decoded.index(after: colon)...]))
    }
}

/// A pull secret whose data cwo cannot read (never quoting the data).
public struct PullSecretError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }

    public init(message: String) {
        self.message = message
    }
}

extension RegistryClient.Credentials: CustomStringConvertible, CustomDebugStringConvertible {
    /// Who, never the password: safe in logs and errors.
    public var description: String { "credentials of \(username)" }
    public var debugDescription: String { description }
}
