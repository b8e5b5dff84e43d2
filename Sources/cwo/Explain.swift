import ArgumentParser
import ConfidentialWorkload
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import FoundationExtras
import KubernetesClient

/// `cwo policy explain`: why the agent allowed or denied a request, asked of the engines the agents embed.
struct Explain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate an agent request against a workload's generated policy and name the check that denies it.",
        discussion: """
            The request is a line of the agent's policy log ({"kind": "CreateContainerRequest", "request": {...}}), \
            a genpolicy test case, or a bare request with --kind. Needs python3 with regorus (PyPI celine-regorus, \
            the upstream agent's engine) and/or opa_eval (PyPI opa-eval, the AKS agent's). Checks are named for \
            generated policies; for a provided or AllowAll one only the verdict is printed.
            """)

    @OptionGroup var input: WorkloadInput
    @OptionGroup var cluster: ClusterAssumptions

    @Option(help: "File with the agent request (JSON).")
    var request: String

    @Option(help: "The request type, when the file holds a bare request (e.g. CreateContainerRequest).")
    var kind: String?

    @Option(help: "File with the agent's policy state (data.pstate) before the request, JSON; default empty.")
    var state: String?

    @Option(help: "Folder of the agent's .proto files: fill the fields the request omits with their defaults, as the agent does (requests from its log are already complete).")
    var protos: String?

    func run() async throws {
        let workloads = try input.load()
        let built = try buildAll(workloads, context: try await cluster.context(for: workloads))
        guard built.count == 1, let policy = built.first?.1.policy else { throw CLIError("explain needs exactly one workload in -f") }
        let document = try JSONCoding.decode(JSONValue.self, from: try read(request))
        guard let endpoint = kind ?? document["kind"]?.stringValue ?? document["type"]?.stringValue else {
            throw CLIError("\(request) does not say its request type: pass --kind")
        }
        let checks = policy.mode == .generated ? PolicyExplanation.checks(for: endpoint) : []
        let job: JSONValue = [
            "policy": .string(policy.text + "\n" + PolicyExplanation.rules(checks)),
            "protos": protos.map { .string($0) } ?? .null,
            "state": try state.map { try JSONCoding.decode(JSONValue.self, from: try read($0)) } ?? [:],
            "sequences": [[[
                "endpoint": .string(endpoint), "input": document["request"] ?? document,
                "queries": .array(checks.indices.map { .string("explain_\($0)") }),
            ]]],
        ]
        let answers = try evaluate(job)
        guard !answers.isEmpty else { throw CLIError("python3 has neither regorus (PyPI celine-regorus) nor opa_eval (PyPI opa-eval)") }
        for (engine, answer) in answers.sorted(by: { $0.key < $1.key }) {
            if let error = answer["error"]?.stringValue {
                print("\(engine): error: \(error)")
                continue
            }
            let allowed = answer["allowed"]?.boolValue ?? false
            print("\(engine): \(endpoint) \(allowed ? "allowed" : "denied")")
            guard !allowed else { continue }
            for (check, value) in zip(checks, answer["values"]?.arrayValue ?? []) where !passes(check, value) {
                print("  failed: \(check.name) (\(check.field))" + (check.offending ? ": " + CanonicalJSON.compact(value) : ""))
                // Without the container it claims to be, the other checks have nothing to compare with.
                if check == checks.first, endpoint == "CreateContainerRequest" { break }
            }
        }
    }

    func passes(_ check: PolicyExplanation.Check, _ value: JSONValue) -> Bool {
        check.offending ? value.arrayValue?.isEmpty == true : value == .bool(true)
    }

    func read(_ path: String) throws -> Data {
        guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read \(path)") }
        return data
    }

    /// The one request's answer per engine, from `AgentSimulatorScript` run by python3.
    func evaluate(_ job: JSONValue) throws -> [String: JSONValue] {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cwo-explain-\(UUID().uuidString).json").path
        try Data(job.compactJSON.utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let python = try ChildProcess.run(["python3", "-c", AgentSimulatorScript.source, path], environment: ProcessInfo.processInfo.environment, discardStandardError: false)
        guard python.status == 0 else { throw CLIError("python3 failed (exit \(python.status))") }
        let engines = try JSONCoding.decode(JSONValue.self, from: python.output).objectValue ?? [:]
        return engines.compactMapValues { $0.arrayValue?.first?.arrayValue?.first }
    }
}
