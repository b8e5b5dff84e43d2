/// A failed image resolution, sorted into the reason a workload's `ImagesResolved` condition gives.
///
/// Messages name the request and the registry's own error code, never a credential or a token.
public struct RegistryError: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// Refused connections, timeouts, TLS failures, 5xx and 429 after the retries.
        case unreachable = "RegistryUnreachable"
        /// 404, or a reference that cannot name an image.
        case notFound = "ImageNotFound"
        /// 401 / 403, or a token the registry would not issue.
        case unauthorized = "Unauthorized"
        /// A media type cwo cannot read, no `linux/amd64` entry, bytes whose digest is not the one asked
        /// for, or a config that does not parse.
        case manifestUnsupported = "ManifestUnsupported"
    }

    public var kind: Kind
    public var status: Int?
    public var message: String
    /// "GET 127.0.0.1:5000/v2/app/manifests/v1" (no query, no credentials).
    public var request: String
    /// From `Retry-After`, when the registry sent one.
    public var retryAfter: Duration?

    public init(kind: Kind, status: Int? = nil, message: String, request: String, retryAfter: Duration? = nil) {
        self.kind = kind
        self.status = status
        self.message = message
        self.request = request
        self.retryAfter = retryAfter
    }

    /// The condition reason: `RegistryUnreachable`, `ImageNotFound`, `Unauthorized`, `ManifestUnsupported`.
    public var reason: String { kind.rawValue }

    public var description: String { "\(request): \(status.map { "HTTP \($0): " } ?? "")\(message)" }

    static func kind(forStatus status: Int) -> Kind {
        switch status {
        case 401, 403: .unauthorized
        case 404: .notFound
        case 408, 429, 500...: .unreachable
        default: .manifestUnsupported
        }
    }
}
