import OCIRegistry

/// Why an image has no facts (yet): the `ImagesResolved` reason and what the registry said.
public struct ImageProblem: Sendable, Hashable {
    /// `RegistryUnreachable`, `ImageNotFound`, `Unauthorized`, `ManifestUnsupported`, or `Resolving`
    /// while the first lookup is under way.
    public var reason: String
    public var message: String

    public init(reason: String, message: String) {
        self.reason = reason
        self.message = message
    }

    public static let resolving = ImageProblem(reason: "Resolving", message: "the registry lookup is under way")
}

/// The `ImagesResolved` condition: True when every template image has its facts, else the first
/// image's problem (Unknown while its first lookup is under way). Ready includes it.
enum ImagesResolved {
    static func condition(facts: [String: ImageFacts], problems: [String: ImageProblem]) -> ConditionInput {
        guard let (reference, problem) = problems.sorted(by: { $0.key < $1.key }).first else {
            let digests = facts.sorted { $0.key < $1.key }.map { "\($0.key) is \($0.value.digest)" }
            return ConditionInput(ConditionType.imagesResolved, .true, "Resolved", digests.isEmpty ? "no images to resolve" : digests.joined(separator: "; "))
        }
        let others = problems.count > 1 ? " (and \(problems.count - 1) more)" : ""
        return ConditionInput(
            ConditionType.imagesResolved, problem == .resolving ? .unknown : .false, problem.reason,
            "image \(reference): \(problem.message)\(others); a Deployment that runs it by digest keeps it, else it runs as the template names it, with the policy's guesses")
    }
}
