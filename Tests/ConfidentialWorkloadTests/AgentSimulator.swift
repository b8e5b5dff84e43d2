import ConfidentialWorkload
import Foundation
import KubernetesClient
import TestSupport

/// The Kata agent's policy check, played by `AgentSimulatorScript` with both engines the agents embed:
/// regorus 0.2.8 (AKS) and regorus 0.9 with Rego v1 (upstream). Requests of one sequence share the policy state.
enum AgentSimulator {
    static let engines = ["regorus-0.2.8", "regorus-0.9"]

    struct EngineMissing: Error, CustomStringConvertible {
        var engine: String
        var description: String { "python3 has no \(engine): scripts/test installs opa-eval and celine-regorus" }
    }

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
        let output = try await runCommand(["python3", "-c", AgentSimulatorScript.source, path])
        let decoded = try JSONDecoder().decode([String: [[JSONValue]]].self, from: Data(output.utf8))
        for engine in engines where decoded[engine] == nil { throw EngineMissing(engine: engine) }
        return decoded.mapValues { $0.map { $0.map { $0["allowed"] ?? $0["error"] ?? .null } } }
    }

    /// The failed checks `cwo policy explain` prints for one request, per engine.
    static func failedChecks(policy: String, endpoint: String, input: JSONValue, protos: String) async throws -> [String: [String]] {
        let checks = PolicyExplanation.checks(for: endpoint)
        let job: JSONValue = [
            "policy": .string(policy + "\n" + PolicyExplanation.rules(checks)), "protos": .string(protos),
            "sequences": [[["endpoint": .string(endpoint), "input": input, "queries": .array(checks.indices.map { .string("explain_\($0)") })]]],
        ]
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cwo-explain-\(UUID().uuidString).json").path
        try JSONCoding.encoder.encode(job).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let output = try await runCommand(["python3", "-c", AgentSimulatorScript.source, path])
        let decoded = try JSONDecoder().decode([String: [[JSONValue]]].self, from: Data(output.utf8))
        return decoded.mapValues { sequences in
            let values = sequences.first?.first?["values"]?.arrayValue ?? []
            return zip(checks, values).filter { check, value in
                check.offending ? value.arrayValue?.isEmpty != true : value != .bool(true)
            }.map(\.0.name)
        }
    }

    /// The same requests, each alone from an empty state.
    static func verdicts(policy: String, _ requests: [Request]) async throws -> [String: [JSONValue]] {
        try await run(policy: policy, sequences: requests.map { [$0] }).mapValues { $0.map { $0[0] } }
    }
}
