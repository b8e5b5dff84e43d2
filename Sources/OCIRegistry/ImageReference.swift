/// An image reference as a pod template writes it, split the way containerd and Docker read it:
/// `[registry/]repository[:tag][@sha256:digest]`, with Docker Hub's defaults filled in.
public struct ImageReference: Sendable, Hashable, CustomStringConvertible {
    /// `docker.io`, `ghcr.io`, `localhost:5000`, `127.0.0.1:5000`.
    public var registry: String
    /// `library/nginx`, `org/app`.
    public var repository: String
    /// nil when only a digest is given.
    public var tag: String?
    /// `sha256:<64 hex>`, when given.
    public var digest: String?

    /// Parses `text`; nil when it is not a reference (empty parts, upper case in the repository, a bad digest).
    public init?(_ text: String) {
        var rest = Substring(text)
        if let at = rest.firstIndex(of: "@") {
            let digest = String(rest[rest.index(after: at)...])
            guard Self.isDigest(digest) else { return nil }
            self.digest = digest
            rest = rest[..<at]
        }
        // A tag follows the last colon after the last slash (a colon before it is a registry port).
        let lastSlash = rest.lastIndex(of: "/")
        if let colon = rest.lastIndex(of: ":"), lastSlash.map({ colon > $0 }) ?? true {
            let tag = String(rest[rest.index(after: colon)...])
            guard !tag.isEmpty, tag.count <= 128, tag.allSatisfy({ $0.isLetter || $0.isNumber || "._-".contains($0) }) else { return nil }
            self.tag = tag
            rest = rest[..<colon]
        }
        var components = rest.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        // The first component is a registry when it looks like a host: a dot, a port, or localhost.
        if components.count > 1, let first = components.first, first.contains(".") || first.contains(":") || first == "localhost" {
            registry = first
            components.removeFirst()
        } else {
            registry = "docker.io"
        }
        if Self.dockerHub.contains(registry) && components.count == 1 { components.insert("library", at: 0) }
        guard components.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isLowercase || $0.isNumber || "._-".contains($0) } }) else { return nil }
        repository = components.joined(separator: "/")
        if tag == nil && digest == nil { tag = "latest" }
    }

    /// Docker Hub's names, whose official images live under `library/`.
    static let dockerHub: Set = ["docker.io", "index.docker.io"]

    /// The host the distribution API answers on (Docker Hub's API is at neither of its names).
    public var apiHost: String { Self.dockerHub.contains(registry) ? "registry-1.docker.io" : registry }

    /// What to ask the registry for: the digest when there is one (it wins over a tag), else the tag.
    public var manifestReference: String { digest ?? tag ?? "latest" }

    /// The fully qualified form, `docker.io/library/nginx:latest`.
    public var description: String {
        "\(registry)/\(repository)" + (tag.map { ":" + $0 } ?? "") + (digest.map { "@" + $0 } ?? "")
    }

    static func isDigest(_ text: String) -> Bool {
        guard text.hasPrefix("sha256:") else { return false }
        let hex = text.dropFirst(7)
        return hex.count == 64 && hex.allSatisfy { $0.isHexDigit && !$0.isUppercase }
    }
}
