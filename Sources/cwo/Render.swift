import ArgumentParser
import ConfidentialWorkload
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import FoundationExtras
import KubernetesClient
import OCIRegistry

/// Reads ConfidentialWorkloads from a file (or stdin) without a cluster.
struct WorkloadInput: ParsableArguments {
    @Option(name: [.customShort("f"), .long], help: "File with one or more ConfidentialWorkload documents ('-' for stdin).")
    var filename: String

    func load() throws -> [ConfidentialWorkload] {
        let text: String
        if filename == "-" {
            text = String(decoding: StandardStream.standardInput.readDataToEndOfFile(), as: UTF8.self)
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

/// What the offline commands assume about the cluster they stand in for.
struct ClusterAssumptions: ParsableArguments {
    @Option(help: "Kubernetes version the objects are for (native sidecars need 1.29+).")
    var kubernetesVersion = "1.30"

    @Option(help: "File with the policy a 'Provided' workload's ConfigMap holds (Rego text or base64).")
    var policyFile: String?

    @Option(help: "File with the KBS CA certificate a CoCo workload's spec.kbs.caConfigMapRef holds (PEM).")
    var kbsCaFile: String?

    @Option(help: "JSON file of image facts as cwo resolves them in the cluster: an object from image reference (as the template writes it) to {digest, manifestDigest, entrypoint, cmd, env, user, workingDir, layers}.")
    var imageFacts: String?

    func context() throws -> BuildContext {
        let parts = kubernetesVersion.split(separator: ".").compactMap { Int($0) }
        guard parts.count >= 2 else { throw ValidationError("--kubernetes-version must look like 1.30") }
        var context = BuildContext(nativeSidecars: parts[0] > 1 || (parts[0] == 1 && parts[1] >= 29))
        if let policyFile {
            guard let data = FileManager.default.contents(atPath: policyFile) else { throw ValidationError("cannot read \(policyFile)") }
            context.providedPolicy = String(decoding: data, as: UTF8.self)
        } else {
            context.providedPolicyProblem = "mode Provided needs the ConfigMap's policy: pass --policy-file"
        }
        if let kbsCaFile {
            guard let data = FileManager.default.contents(atPath: kbsCaFile) else { throw ValidationError("cannot read \(kbsCaFile)") }
            context.kbsCertificate = String(decoding: data, as: UTF8.self)
        } else {
            context.kbsCertificateProblem = "spec.kbs.caConfigMapRef needs the ConfigMap's certificate: pass --kbs-ca-file"
        }
        if let imageFacts {
            guard let data = FileManager.default.contents(atPath: imageFacts) else { throw ValidationError("cannot read \(imageFacts)") }
            do {
                context.imageFacts = try JSONDecoder().decode([String: ImageFacts].self, from: data)
            } catch {
                throw CLIError("\(imageFacts): not image facts: \(error)")
            }
        }
        return context
    }
}

/// Builds every workload of the input, printing each problem (field and message) to stderr.
func buildAll(_ workloads: [ConfidentialWorkload], context: BuildContext) throws -> [(ConfidentialWorkload, DesiredState)] {
    var built: [(ConfidentialWorkload, DesiredState)] = []
    var failed = false
    for workload in workloads {
        switch DesiredState.build(workload, context: context) {
        case .success(let state):
            built.append((workload, state))
            for warning in state.spec.warnings {
                StandardStream.standardError.write(Data("warning: \(workload.metadata.namespace ?? "")/\(workload.metadata.name ?? ""): \(warning)\n".utf8))
            }
        case .failure(let errors):
            failed = true
            for error in errors.errors {
                StandardStream.standardError.write(Data("error: \(workload.metadata.namespace ?? "")/\(workload.metadata.name ?? ""): \(error.field): \(error.message)\n".utf8))
            }
        }
    }
    if failed { throw ExitCode(1) }
    return built
}

struct Render: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print, as a YAML stream, exactly the objects cwo would apply for each workload (no cluster needed).")

    @OptionGroup var input: WorkloadInput
    @OptionGroup var cluster: ClusterAssumptions

    func run() throws {
        let built = try buildAll(try input.load(), context: try cluster.context())
        print(try YAMLDocuments.dump(built.flatMap { $0.1.objects }), terminator: "")
    }
}

struct Policy: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a workload's confidential artifacts, or explain the policy's verdict on an agent request.",
        subcommands: [Show.self, Explain.self], defaultSubcommand: Show.self)
}

struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print one confidential artifact of each workload: the Rego policy, its annotation value, its hash, the Key Vault release policy, or (CoCo) the initdata annotation, its digest, or the KBS resource policy.")

    enum Output: String, ExpressibleByArgument, CaseIterable {
        case rego, annotation, hash, releasePolicy = "release-policy", initdata, digest, resourcePolicy = "resource-policy"
    }

    @OptionGroup var input: WorkloadInput
    @OptionGroup var cluster: ClusterAssumptions

    @Option(help: "rego, annotation, hash, release-policy; for CoCo workloads initdata, digest or resource-policy.")
    var output: Output = .rego

    func run() throws {
        for (workload, state) in try buildAll(try input.load(), context: try cluster.context()) {
            switch output {
            case .rego: print(state.policy.text, terminator: "")
            case .annotation: print(state.policy.annotation)
            case .hash: print(state.policy.hash)
            case .releasePolicy:
                guard let maa = state.spec.attestation.maaEndpoint, state.spec.keyVault != nil else {
                    StandardStream.standardError.write(Data("error: \(workload.metadata.name ?? ""): spec.keyVault is not set: there is no release policy\n".utf8))
                    throw ExitCode(1)
                }
                print(CanonicalJSON.pretty(KeyVaultBuilder.releasePolicy(maaEndpoint: maa, hashes: state.allowedHashes)))
            case .initdata, .digest, .resourcePolicy:
                guard let initData = state.initData else {
                    StandardStream.standardError.write(Data("error: \(workload.metadata.name ?? ""): runs on AKS: there is no initdata (spec.platform: CoCo or a CoCo runtime class)\n".utf8))
                    throw ExitCode(1)
                }
                switch output {
                case .initdata: print(initData.annotationValue)
                case .digest: print(initData.digestHex)
                default:
                    guard let kbs = state.spec.kbs else {
                        StandardStream.standardError.write(Data("error: \(workload.metadata.name ?? ""): spec.kbs is not set: there is no resource policy\n".utf8))
                        throw ExitCode(1)
                    }
                    let grant = ResourcePolicy.Grant(
                        workload: "\(workload.metadata.namespace ?? "")/\(workload.metadata.name ?? "")", paths: kbs.resources.map(\.path),
                        tee: state.spec.coco?.tee ?? .snp, digests: state.allowedHashes)
                    print(ResourcePolicy.compose([grant]), terminator: "")
                }
            }
        }
    }
}
