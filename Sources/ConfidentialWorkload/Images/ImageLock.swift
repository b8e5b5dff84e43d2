import KubernetesClient
import OCIRegistry

/// What the registry's facts change in the pod template: with `spec.images.lockDigests`, every container
/// whose image was resolved runs `repository@sha256:…`, so the bytes that run are the bytes the facts
/// (and the policy made from them) describe.
enum ImageLock {
    /// Applies `facts` (keyed by the image as the template writes it) to the template's containers; the
    /// facts keyed by each container's image as it is now written (locked or not), for the policy.
    static func apply(to template: inout JSONValue, facts: [String: ImageFacts], lock: Bool) -> [String: ImageFacts] {
        var final: [String: ImageFacts] = [:]
        for list in ["initContainers", "containers"] {
            guard var containers = template[path: ["spec", list]]?.arrayValue else { continue }
            for index in containers.indices {
                guard let image = containers[index]["image"]?.stringValue, let resolved = facts[image] else { continue }
                let written = lock ? locked(image, digest: resolved.digest) : image
                containers[index]["image"] = .string(written)
                final[written] = resolved
            }
            template["spec"]?[list] = .array(containers)
        }
        return final
    }

    /// Why the live Deployment must not be written yet, nil when it may be: an image still being
    /// resolved for a Deployment not created yet (so it is created by digest, not rolled to it a moment
    /// later), or an image without facts that the live Deployment runs by digest (a restarted cwo, a
    /// registry down: the pods keep running what they run). `problems` are the context's.
    static func hold(problems: [String: ImageProblem]?, lock: Bool, live: JSONValue?) -> String? {
        guard lock, let problems, !problems.isEmpty else { return nil }
        guard let live else {
            let resolving = problems.filter { $0.value == .resolving }.keys.sorted()
            return resolving.isEmpty ? nil : "the Deployment is created once the registry answers for \(resolving.joined(separator: ", "))"
        }
        let podSpec = live[path: ["spec", "template", "spec"]]
        let running = ((podSpec?["initContainers"]?.arrayValue ?? []) + (podSpec?["containers"]?.arrayValue ?? [])).compactMap { $0["image"]?.stringValue }
        let held = problems.keys.sorted().filter { reference in
            running.contains { $0.hasPrefix(locked(reference, digest: "sha256:")) }
        }
        return held.isEmpty ? nil : "rollout held: the Deployment keeps running \(held.joined(separator: ", ")) by digest until the registry answers"
    }

    /// `reference` by digest: as written up to its tag or digest, then `@digest`
    /// (`nginx:1.27` → `nginx@sha256:…`, `localhost:5000/app:v1` → `localhost:5000/app@sha256:…`).
    static func locked(_ reference: String, digest: String) -> String {
        var repository = Substring(reference)
        if let at = repository.firstIndex(of: "@") { repository = repository[..<at] }
        // A colon after the last slash starts the tag (one before it is a registry port).
        if let colon = repository.lastIndex(of: ":"), repository.lastIndex(of: "/").map({ colon > $0 }) ?? true {
            repository = repository[..<colon]
        }
        return repository + "@" + digest
    }
}
