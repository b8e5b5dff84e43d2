import Foundation
import KubernetesClient
import TestSupport

/// The Kata agent's policy check, played by Rego/agent.py with both engines the agents embed: regorus 0.2.8
/// (AKS) and regorus 0.9 with Rego v1 (upstream). Requests of one sequence share the policy state.
enum AgentSimulator {
    static let engines = ["regorus-0.2.8", "regorus-0.9"]

    struct Request {
        var endpoint: String
        var input: JSONValue
    }

    /// One verdict per engine, sequence and request: true, false, or the engine's error text.
    static func run(policy: String, sequences: [[Request]], protos: String? = nil) async throws -> [String: [[JSONValue]]] {
        let request: JSONValue = [
            "policy": .string(policy), "protos": protos.map { .string($0) } ?? .null,
            "sequences": .array(sequences.map { .array($0.map { ["endpoint": .string($0.endpoint), "input": $0.input] }) }),
        ]
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cwo-agent-\(UUID().uuidString).json").path
        try JSONCoding.encoder.encode(request).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Rego/agent.py").path
        let output = try await runCommand(["python3", script, path])
        let decoded = try JSONDecoder().decode([String: [[JSONValue]]].self, from: Data(output.utf8))
        return decoded.mapValues { $0.map { $0.map { $0["allowed"] ?? $0["error"] ?? .null } } }
    }

    /// The same requests, each alone from an empty state.
    static func verdicts(policy: String, _ requests: [Request]) async throws -> [String: [JSONValue]] {
        try await run(policy: policy, sequences: requests.map { [$0] }).mapValues { $0.map { $0[0] } }
    }
}
