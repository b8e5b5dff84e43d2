/// `metav1.Status`: what the server returns with an error (and in watch `ERROR` events).
public struct Status: Codable, Sendable, Hashable {
    public var kind: String?
    public var apiVersion: String?
    public var status: String?
    public var message: String?
    public var reason: String?
    public var details: StatusDetails?
    public var code: Int?

    public init(status: String? = nil, message: String? = nil, reason: String? = nil, code: Int? = nil) {
        self.kind = "Status"
        self.apiVersion = "v1"
        self.status = status
        self.message = message
        self.reason = reason
        self.code = code
    }
}

public struct StatusDetails: Codable, Sendable, Hashable {
    public var name: String?
    public var group: String?
    public var kind: String?
    public var uid: String?
    public var causes: [StatusCause]?
    public var retryAfterSeconds: Int?
}

public struct StatusCause: Codable, Sendable, Hashable {
    public var reason: String?
    public var message: String?
    public var field: String?
}

/// `metav1.Condition`.
public struct Condition: Codable, Sendable, Hashable {
    public var type: String
    // `status` after `observedGeneration` fills the optional's padding: 80 bytes a condition, not 88
    // (a cached workload holds six or seven).
    public var observedGeneration: Int64?
    public var status: ConditionStatus
    public var lastTransitionTime: String
    public var reason: String
    public var message: String

    public init(
        type: String, status: ConditionStatus, observedGeneration: Int64?, lastTransitionTime: String, reason: String,
        message: String
    ) {
        self.type = type
        self.status = status
        self.observedGeneration = observedGeneration
        self.lastTransitionTime = lastTransitionTime
        self.reason = reason
        self.message = message
    }
}

public enum ConditionStatus: String, Codable, Sendable, Hashable {
    case `true` = "True"
    case `false` = "False"
    case unknown = "Unknown"
}
