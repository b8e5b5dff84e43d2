import ArgumentParser
import ConfidentialWorkload
import Foundation
import KubernetesClient

/// Reads ConfidentialWorkloads from a file (or stdin) without a cluster.
struct WorkloadInput: ParsableArguments {
    @Option(name: [.customShort("f"), .long], help: "File with one or more ConfidentialWorkload documents ('-' for stdin).")
    var filename: String

    func load() throws -> [ConfidentialWorkload] {
        let text: String
        if filename == "-" {
            text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
        } else {
            guard let data = FileManager.default.contents(atPath: filename) else {
                throw ValidationError("cannot read \(filename)")
            }
            text = String(decoding: data, as: UTF8.self)
        }
        let documents: [JSONValue]
        do {
            documents = try YAMLDocuments.parse(text)
        } catch {
            throw CLIError("\(filename): \(error)")
        }
        guard !documents.isEmpty else { throw CLIError("\(filename): no ConfidentialWorkload documents") }
        var workloads: [ConfidentialWorkload] = []
        for (index, document) in documents.enumerated() {
            let where_ = "\(filename) document \(index + 1)"
            guard document["kind"]?.stringValue == ConfidentialWorkload.kind else {
                throw CLIError("\(where_): kind is \(document["kind"]?.stringValue ?? "missing"), expected \(ConfidentialWorkload.kind)")
            }
            guard document["apiVersion"]?.stringValue == ConfidentialWorkload.apiVersion else {
                throw CLIError("\(where_): apiVersion must be \(ConfidentialWorkload.apiVersion)")
            }
            var workload: ConfidentialWorkload
            do {
                workload = try document.decode(as: ConfidentialWorkload.self)
            } catch {
                throw CLIError("\(where_): metadata is not valid: \(error)")
            }
            guard let name = workload.metadata.name, !name.isEmpty else { throw CLIError("\(where_): metadata.name is required") }
            // Offline there is no server to fill these in; use what it would.
            if workload.metadata.namespace == nil { workload.metadata.namespace = "default" }
            if workload.metadata.uid == nil { workload.metadata.uid = "00000000-0000-0000-0000-000000000000" }
            workloads.append(workload)
        }
        return workloads
    }
}

struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ message: String) { description = message }
}

struct Render: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print, as a YAML stream, exactly the objects cwo would apply for each workload (no cluster needed).")

    @OptionGroup var input: WorkloadInput

    func run() throws {
        var objects: [JSONValue] = []
        var failed = false
        for workload in try input.load() {
            switch DesiredState.build(workload) {
            case .success(let state):
                objects.append(contentsOf: state.objects)
            case .failure(let errors):
                failed = true
                for error in errors.errors {
                    FileHandle.standardError.write(Data("error: \(workload.metadata.namespace ?? "")/\(workload.metadata.name ?? ""): \(error.field): \(error.message)\n".utf8))
                }
            }
        }
        if failed { throw ExitCode(1) }
        print(try YAMLDocuments.dump(objects), terminator: "")
    }
}
