import ConfidentialWorkload
import Foundation
import KubernetesClient
import Testing
import TestSupport

/// The bad-input corpus (Corpus/*.json: a workload and the reason and field cwo must report) and a
/// seeded fuzz of valid workloads through every builder and validator.
@Suite struct BadInputTests {
    static let corpusFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Corpus")
    static let corpus: [String] = ((try? FileManager.default.contentsOfDirectory(atPath: corpusFolder.path)) ?? []).filter { $0.hasSuffix(".json") }.sorted()

    static func load(_ file: String) throws -> (workload: ConfidentialWorkload, reason: String, field: String) {
        let value = try JSONDecoder().decode(JSONValue.self, from: Data(contentsOf: corpusFolder.appendingPathComponent(file)))
        var workload = try (value["workload"] ?? [:]).decode(as: ConfidentialWorkload.self)
        workload.metadata.namespace = "corpus"
        workload.metadata.uid = "uid"
        return (workload, value[path: ["expect", "reason"]]?.stringValue ?? "", value[path: ["expect", "field"]]?.stringValue ?? "")
    }

    @Test func theCorpusHasAtLeastFortyCases() {
        #expect(Self.corpus.count >= 40, "\(Self.corpus.count) cases")
    }

    @Test(arguments: corpus)
    func eachBadWorkloadGetsItsReasonAndField(file: String) throws {
        let (workload, reason, field) = try Self.load(file)
        switch DesiredState.build(workload) {
        case .success: Issue.record("\(file): accepted")
        case .failure(let errors):
            #expect(errors.reason == reason, "\(file)")
            #expect(errors.errors.contains { $0.field == field }, "\(file): \(errors)")
            #expect(!errors.description.isEmpty)
        }
    }

    @Test func aTemplateWithAMebibyteOfEnvIsRejectedClearly() {
        let spec: JSONValue = ["template": ["spec": ["containers": [["name": "app", "image": "x:1", "env": [["name": "BLOB", "value": .string(String(repeating: "x", count: 1 << 20))]]]]]]]
        guard case .failure(let errors) = DesiredState.build(workload(spec: spec)) else {
            Issue.record("a 1 MiB policy annotation was accepted")
            return
        }
        #expect(errors.errors.first?.message.contains("256 KiB") == true)
    }

    @Test func manyContainersAndUnicodeAnnotationsAreHandled() throws {
        let containers: [JSONValue] = (0..<60).map { ["name": .string("c\($0)"), "image": .string("registry.example/app:\($0)")] }
        let spec: JSONValue = ["template": ["metadata": ["annotations": ["note": "żółw 🐢 — ünïcødé"]], "spec": ["containers": .array(containers)]]]
        let state = try DesiredState.build(workload(String(repeating: "n", count: 63), spec: spec)).get()
        #expect(state.deployment[path: ["spec", "template", "metadata", "annotations", "note"]] == "żółw 🐢 — ünïcødé")
        #expect(state.policy.text.contains("\"c59\""))
        #expect(try YAMLDocuments.parse(try YAMLDocuments.dump(state.objects)) == state.objects)
    }

    /// Truncated and mangled documents through the same decoding path as `cwo render` and the watch:
    /// an error with a message, never a crash.
    @Test func truncatedDocumentsAreErrorsNotCrashes() throws {
        for file in Self.corpus.prefix(20) {
            let text = try String(contentsOf: Self.corpusFolder.appendingPathComponent(file), encoding: .utf8)
            for cut in stride(from: 1, to: text.utf8.count, by: max(1, text.utf8.count / 25)) {
                let prefix = String(decoding: Array(text.utf8.prefix(cut)), as: UTF8.self)
                if let documents = try? YAMLDocuments.parse(prefix) {
                    for document in documents {
                        if let workload = try? document.decode(as: ConfidentialWorkload.self) { _ = DesiredState.build(workload) }
                    }
                }
                _ = try? WatchDecoding.decode(Array(("{\"type\":\"ADDED\",\"object\":" + prefix).utf8), as: ConfidentialWorkload.self)
            }
        }
    }

    /// Random mutations of a valid workload, with a fixed seed: no crash, and a valid result is deterministic.
    @Test func fuzzedWorkloadsNeverCrashAndValidOutputIsDeterministic() async throws {
        var generator = SplitMix64(seed: 0xC0FFEE)
        let base = try ArtifactTests.sample("secure-processor")
        let iterations = Int(ProcessInfo.processInfo.environment["CWO_FUZZ_ITERATIONS"] ?? "") ?? 2000
        var valid = 0
        for iteration in 0..<iterations {
            // Tens of seconds of builds in a debug build: let the other suites' work run in between (the
            // test process's pool has a thread per core, and this loop would hold one from the start).
            if iteration % 20 == 0 { await Task.yield() }
            var workload = base
            workload.spec = Fuzz.mutate(base.spec ?? [:], using: &generator, depth: 0)
            if case .success(let first) = DesiredState.build(workload) {
                valid += 1
                let second = try DesiredState.build(workload).get()
                #expect(first.policy.text == second.policy.text)
                #expect(CanonicalJSON.compact(.array(first.objects)) == CanonicalJSON.compact(.array(second.objects)))
            }
        }
        print("fuzz: \(iterations) iterations, \(valid) valid")
        #expect(valid > 0 && valid < iterations, "the fuzzer should produce both valid and invalid workloads")
    }
}

enum Fuzz {
    static let scalars: [JSONValue] = [
        .null, true, false, 0, -1, 65536, .number(1.5), "", "x", "kata-cc", "App_1", "nginx:latest", "żółw", "a/b:c@sha256:00",
        .string(String(repeating: "a", count: 300)), [], [:], ["name": "v"], [["name": "x", "image": "y"]],
    ]

    static func mutate(_ value: JSONValue, using generator: inout SplitMix64, depth: Int) -> JSONValue {
        let roll = Int.random(in: 0..<10, using: &generator)
        switch value {
        case .object(var fields) where depth < 8:
            if roll == 0, let key = fields.keys.sorted().randomElement(using: &generator) { fields[key] = nil; return .object(fields) }
            if roll == 1 { fields["extra\(depth)"] = scalars.randomElement(using: &generator); return .object(fields) }
            if roll == 2 { return scalars.randomElement(using: &generator) ?? .null }
            if let key = fields.keys.sorted().randomElement(using: &generator), let child = fields[key] {
                fields[key] = mutate(child, using: &generator, depth: depth + 1)
            }
            return .object(fields)
        case .array(var items) where depth < 8:
            if roll == 0, !items.isEmpty { items.remove(at: Int.random(in: 0..<items.count, using: &generator)); return .array(items) }
            if roll == 1, let first = items.first { items.append(first); return .array(items) }
            if roll == 2 { return scalars.randomElement(using: &generator) ?? .null }
            if !items.isEmpty {
                let index = Int.random(in: 0..<items.count, using: &generator)
                items[index] = mutate(items[index], using: &generator, depth: depth + 1)
            }
            return .array(items)
        default:
            return roll < 7 ? (scalars.randomElement(using: &generator) ?? value) : value
        }
    }
}
