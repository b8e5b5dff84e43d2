/// An error from the Kubernetes API, classified from the server's `Status` and HTTP code.
///
/// Carries the request (method and path, never headers or bodies, so never a credential) for context.
public struct KubeError: Error, Sendable, CustomStringConvertible {
    public enum Reason: String, Sendable, Hashable {
        case badRequest = "BadRequest"
        case unauthorized = "Unauthorized"
        case forbidden = "Forbidden"
        case notFound = "NotFound"
        case alreadyExists = "AlreadyExists"
        case conflict = "Conflict"
        /// 410, or a watch `ERROR` with reason `Expired`/`Gone`: the resourceVersion was compacted; relist.
        case gone = "Gone"
        case invalid = "Invalid"
        case tooManyRequests = "TooManyRequests"
        case serverError = "InternalError"
        case serviceUnavailable = "ServiceUnavailable"
        case timeout = "Timeout"
        case unsupportedMediaType = "UnsupportedMediaType"
        case other = "Unknown"
    }

    public var reason: Reason
    public var code: Int
    public var message: String
    public var status: Status?
    public var method: String
    public var path: String
    /// From `Retry-After` or `details.retryAfterSeconds`.
    public var retryAfter: Duration?

    public init(
        reason: Reason, code: Int, message: String, status: Status? = nil, method: String, path: String,
        retryAfter: Duration? = nil
    ) {
        self.reason = reason
        self.code = code
        self.message = message
        self.status = status
        self.method = method
        self.path = path
        self.retryAfter = retryAfter
    }

    /// Field-level causes of an `Invalid` error.
    public var causes: [StatusCause] { status?.details?.causes ?? [] }

    public var description: String {
        var text = "\(method) \(path): \(code) \(reason.rawValue): \(message)"
        for cause in causes {
            text += "\n  \(cause.field ?? "?"): \(cause.message ?? cause.reason ?? "")"
        }
        return text
    }

    public static func classify(code: Int, status: Status?, method: String, path: String, retryAfter: Duration?) -> KubeError {
        let reason: Reason =
            switch (status?.reason, code) {
            case ("NotFound", _), (_, 404): .notFound
            case ("AlreadyExists", _): .alreadyExists
            case ("Conflict", _), (_, 409): .conflict
            case ("Expired", _), ("Gone", _), (_, 410): .gone
            case ("Invalid", _), (_, 422): .invalid
            case ("Forbidden", _), (_, 403): .forbidden
            case ("Unauthorized", _), (_, 401): .unauthorized
            case ("TooManyRequests", _), (_, 429): .tooManyRequests
            case ("Timeout", _), (_, 504): .timeout
            case ("ServiceUnavailable", _), (_, 503): .serviceUnavailable
            case (_, 415): .unsupportedMediaType
            case (_, 400): .badRequest
            case (_, 500...599): .serverError
            default: .other
            }
        var retry = retryAfter
        if retry == nil, let seconds = status?.details?.retryAfterSeconds { retry = .seconds(seconds) }
        return KubeError(
            reason: reason, code: code, message: status?.message ?? "HTTP \(code)", status: status, method: method,
            path: path, retryAfter: retry)
    }
}

/// Errors that are not answers of the API server.
public enum KubeClientError: Error, Sendable, CustomStringConvertible {
    case configuration(String)
    case transport(method: String, path: String, underlying: String)
    case decoding(method: String, path: String, underlying: String)
    case watchLineTooLong(limit: Int)

    public var description: String {
        switch self {
        case .configuration(let message): "configuration: \(message)"
        case .transport(let method, let path, let underlying): "\(method) \(path): transport error: \(underlying)"
        case .decoding(let method, let path, let underlying): "\(method) \(path): cannot decode response: \(underlying)"
        case .watchLineTooLong(let limit): "watch event larger than \(limit) bytes"
        }
    }
}

extension Error {
    /// True when the failure is the API server's passing state, not something about the request: it is
    /// unreachable, overloaded or restarting (transport errors, 429, 5xx), or its admission chain has not
    /// yet discovered a custom resource kind after a restart — `OwnerReferencesPermissionEnforcement`
    /// answers 403 "cannot find RESTMapping" for an owner of that kind until its discovery cache is
    /// refreshed, up to 30 s later (the Status carries no structured cause; the message is all there is).
    /// Retrying such a failure soon is right however often it has happened.
    public var isServerTransient: Bool {
        if case .transport = self as? KubeClientError { return true }
        guard let error = self as? KubeError else { return false }
        switch error.reason {
        case .tooManyRequests, .serverError, .serviceUnavailable, .timeout: return true
        case .forbidden: return error.message.contains("cannot find RESTMapping")
        default: return false
        }
    }

    /// True for a `KubeError` with the given reason.
    public func isKube(_ reason: KubeError.Reason) -> Bool {
        (self as? KubeError)?.reason == reason
    }
}
