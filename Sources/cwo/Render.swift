import ArgumentParser
import ConfidentialWorkload
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import FoundationExtras
import KubernetesClient
import Logging
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

    @Option(help: "JSON file of image facts as cwo resolves them in the cluster: an object from image reference (as the template writes it) to {digest, manifestDigest, entrypoint, cmd, env, user, workingDir, layers, tarfsLayers}; `cwo policy --output image-facts --resolve` writes one.")
    var imageFacts: String?

    @Flag(help: "Resolve the templates' images in their registries now, with the lookups cwo run makes (images --image-facts gives are not looked up); an image that cannot be resolved is an error.")
    var resolve = false

    @Option(help: "With --resolve: PEM file of extra CAs to trust for image registries.")
    var registryCaFile: String?

    @Option(help: "With --resolve: registry credentials, as a docker config file (~/.docker/config.json, or a pull secret's .dockerconfigjson).")
    var registryConfig: String?

    /// The context every workload of `workloads` is built with (with `--resolve`, after asking the registries).
    func context(for workloads: [ConfidentialWorkload]) async throws -> BuildContext {
        var context = try context()
        guard resolve else { return context }
        // As cwo run asks: AKS workloads' images with their layers' root hashes, and the pause image's.
        var layered: Set<String> = []
        var all: Set<String> = []
        for workload in workloads {
            let (references, hostPulled) = DesiredState.imageNeeds(workload)
            all.formUnion(references)
            if hostPulled { layered.formUnion(references + [HostPulledLayers.aksPauseImage]) }
        }
        let references = all.union(layered).subtracting(context.imageFacts.keys).sorted()
        var secrets = PullSecrets()
        if let registryConfig {
            guard let data = FileManager.default.contents(atPath: registryConfig) else { throw ValidationError("cannot read \(registryConfig)") }
            do { try secrets.add(secretData: Array(data)) } catch { throw CLIError("\(registryConfig): \(error)") }
        }
        let registry = try RegistryClient(options: .init(caFile: registryCaFile), logger: Logger(label: "cwo.registry"))
        var failure: (any Error)?
        for reference in references {
            do {
                context.imageFacts[reference] = try await registry.resolve(
                    reference, credentials: ImageReference(reference).flatMap(secrets.credentials(for:)), tarfsLayers: layered.contains(reference))
            } catch where reference == HostPulledLayers.aksPauseImage && !all.contains(reference) {
                // As in the cluster: without the pause image's facts the policy denies its host-pulled layers.
                StandardStream.standardError.write(Data("warning: \(reference) (the AKS pause image): \(error.reason): \(error); the policy denies its host-pulled layers\n".utf8))
            } catch {
                failure = CLIError("image \(reference): \(error.reason): \(error)")
                break
            }
        }
        try? await registry.shutdown()
        if let failure { throw failure }
        return context
    }

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

struct Render: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print, as a YAML stream, exactly the objects cwo would apply for each workload (no cluster needed).")

    @OptionGroup var input: WorkloadInput
    @OptionGroup var cluster: ClusterAssumptions

    func run() async throws {
        let workloads = try input.load()
        let built = try buildAll(workloads, context: try await cluster.context(for: workloads))
        print(try YAMLDocuments.dump(built.flatMap { $0.1.objects }), terminator: "")
    }
}

struct Policy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a workload's confidential artifacts, or explain the policy's verdict on an agent request.",
        subcommands: [Show.self, Explain.self], defaultSubcommand: Show.self)
}

struct Show: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print one confidential artifact of each workload: the Rego policy, its annotation value, its hash, the Key Vault release policy, or (CoCo) the initdata annotation, its digest, or the KBS resource policy.")

    enum Output: String, ExpressibleByArgument, CaseIterable {
        case rego, annotation, hash, releasePolicy = "release-policy", initdata, digest, resourcePolicy = "resource-policy"
        case imageFacts = "image-facts"
    }

    @OptionGroup var input: WorkloadInput
    @OptionGroup var cluster: ClusterAssumptions

    @Option(help: "rego, annotation, hash, release-policy; for CoCo workloads initdata, digest or resource-policy; image-facts: the facts of every template image (for --image-facts), once.")
    var output: Output = .rego

    func run() async throws {
        let workloads = try input.load()
        let context = try await cluster.context(for: workloads)
        let built = try buildAll(workloads, context: context)
        if output == .imageFacts {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(context.imageFacts), as: UTF8.self))
            return
        }
        for (workload, state) in built {
            switch output {
            case .imageFacts: break
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
