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
///
/// Its fields are held in one immutable, shareable box (8 bytes a condition in an array): most of what a
/// cache holds of conditions repeats across objects (a condition with the same type, reason, message and
/// second of transition), and `shared()` gives one copy of such a condition to all of them.
public struct Condition: Codable, Sendable, Hashable {
    private var fields: Indirect<Values>

    public var type: String {
        get { fields.value.type }
        set { fields = fields.with { $0.type = newValue } }
    }
    public var observedGeneration: Int64? {
        get { fields.value.observedGeneration }
        set { fields = fields.with { $0.observedGeneration = newValue } }
    }
    public var status: ConditionStatus {
        get { fields.value.status }
        set { fields = fields.with { $0.status = newValue } }
    }
    public var lastTransitionTime: String {
        get { fields.value.lastTransitionTime }
        set { fields = fields.with { $0.lastTransitionTime = newValue } }
    }
    public var reason: String {
        get { fields.value.reason }
        set { fields = fields.with { $0.reason = newValue } }
    }
    public var message: String {
        get { fields.value.message }
        set { fields = fields.with { $0.message = newValue } }
    }

    public init(
        type: String, status: ConditionStatus, observedGeneration: Int64?, lastTransitionTime: String, reason: String,
        message: String
    ) {
        fields = Indirect(Values(
            type: type, observedGeneration: observedGeneration, status: status, lastTransitionTime: lastTransitionTime,
            reason: reason, message: message))
    }

    /// This condition with the one copy of it the process shares among the objects it caches (see
    /// `ConditionInterner`). The same value: for a cache's transform.
    public func shared() -> Condition {
        var copy = self
        copy.fields = ConditionInterner.intern(fields)
        return copy
    }

    /// True when both hold the same copy of their fields (`shared()` of equal conditions); for tests.
    func isSameCopy(as other: Condition) -> Bool { fields === other.fields }

    /// Coded as its fields: the members of `metav1.Condition`, `observedGeneration` left out when unset.
    public init(from decoder: any Decoder) throws { fields = try Indirect(from: decoder) }
    public func encode(to encoder: any Encoder) throws { try fields.encode(to: encoder) }

    struct Values: Codable, Sendable, Hashable {
        var type: String
        var observedGeneration: Int64?
        var status: ConditionStatus
        var lastTransitionTime: String
        var reason: String
        var message: String
    }
}

public enum ConditionStatus: String, Codable, Sendable, Hashable {
    case `true` = "True"
    case `false` = "False"
    case unknown = "Unknown"
}
