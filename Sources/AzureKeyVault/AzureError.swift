/// A failed call to Key Vault or to the identity endpoint, classified so a controller can say why.
///
/// Messages carry the service's own error code and text, never a token or a request body.
public struct AzureError: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// 401: the access token was refused.
        case unauthorized
        /// 403: the identity lacks a Key Vault role or permission.
        case forbidden
        case notFound
        /// 409: e.g. a key of that name is deleted but recoverable.
        case conflict
        /// 429 beyond what the client waits out itself.
        case throttled
        /// 5xx, timeouts, refused connections.
        case unavailable
        /// 400 and other answers that retrying will not change.
        case rejected
        /// The token exchange failed (bad federated token, unknown client, wrong tenant).
        case identity
        /// The answer could not be understood.
        case decoding
    }

    public var kind: Kind
    /// HTTP status, when there was an answer.
    public var status: Int?
    /// The service's error code (`KeyNotFound`, `Forbidden`, `invalid_client`, ...).
    public var code: String?
    public var message: String
    /// "PATCH /keys/app-key/…" (no query, no host secrets).
    public var request: String
    /// From `Retry-After`, when the server sent one.
    public var retryAfter: Duration?

    public init(kind: Kind, status: Int? = nil, code: String? = nil, message: String, request: String, retryAfter: Duration? = nil) {
        self.kind = kind
        self.status = status
        self.code = code
        self.message = message
        self.request = request
        self.retryAfter = retryAfter
    }

    public var description: String {
        var text = "\(request): "
        if let status { text += "\(status) " }
        if let code { text += "\(code): " }
        return text + message
    }

    static func kind(forStatus status: Int) -> Kind {
        switch status {
        case 401: .unauthorized
        case 403: .forbidden
        case 404: .notFound
        case 409: .conflict
        case 429: .throttled
        case 500...599, 408: .unavailable
        default: .rejected
        }
    }
}
