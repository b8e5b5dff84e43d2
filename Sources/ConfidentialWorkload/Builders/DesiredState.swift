import ControllerRuntime
import KubernetesClient
import OCIRegistry

/// What the desired state depends on beyond the workload itself.
public struct BuildContext: Sendable, Hashable {
    /// Whether the server runs native sidecars (Kubernetes 1.29+).
    public var nativeSidecars = true
    /// For `policy.mode: Provided`: the ConfigMap value, nil when it could not be read.
    public var providedPolicy: String?
    /// Why the provided policy could not be read (names the ConfigMap and key).
    public var providedPolicyProblem: String?
    /// Policy hashes (AKS) or initdata digests (CoCo) of older pod templates whose pods still run (a
    /// rollout in progress).
    public var runningHashes: [String] = []
    /// CoCo with `spec.kbs.caConfigMapRef`: the KBS's CA certificate (PEM), or why it could not be read.
    public var kbsCertificate: String?
    public var kbsCertificateProblem: String?
    /// What the registry says about the template's images, keyed by the image reference as the template
    /// writes it; an image without facts keeps today's policy (args tail, guessed image variables).
    public var imageFacts: [String: ImageFacts] = [:]
    /// With image resolution on (`cwo run --resolve-images`): why each template image without facts has
    /// none. nil when cwo does not resolve images (then there is no `ImagesResolved` condition).
    public var imageProblems: [String: ImageProblem]?

    public init(nativeSidecars: Bool = true, providedPolicy: String? = nil, runningHashes: [String] = []) {
        self.nativeSidecars = nativeSidecars
        self.providedPolicy = providedPolicy
        self.runningHashes = runningHashes
    }
}

/// Everything cwo wants to exist for one workload, computed without a cluster.
///
/// The controller applies exactly these objects, and `cwo render` / `cwo policy` print exactly these
/// objects: both call `DesiredState.build`, so offline output and in-cluster state cannot drift apart.
public struct DesiredState: Sendable {
    public var spec: WorkloadSpec
    public var policy: AgentPolicy
    public var placement: AttestationSettings.Placement?
    /// CoCo: the measured initdata that carries the policy.
    public var initData: InitData?
    /// What the key release allows: policy hashes (AKS) or initdata digests (CoCo), the current one
    /// first, then those still running.
    public var allowedHashes: [String]
    public var deployment: JSONValue { didSet { condensedDeployment = nil } }
    /// `deployment` as the cache keeps it, from the build that stamped it (its policy annotation had to be
    /// hashed for the intent digest then); nil once `deployment` is changed.
    private var condensedDeployment: JSONValue?
    public var serviceAccount: JSONValue?
    public var configMap: JSONValue?
    public var conditions: [ConditionInput]
    /// The facts the policy pins, keyed by each container's image as the Deployment runs it.
    public var imageFacts: [String: ImageFacts] = [:]
    /// With image resolution on: each template container whose image has facts (`status.images`).
    public var images: [ImageStatus]?

    /// The desired state in the cache's form: no policy text (its hash is kept), measurements rather than
    /// documents (the template is in the workload's spec, the initdata in the Deployment), and the
    /// Deployment's policy annotation replaced by its digest (see `PolicyDigest`), so it compares with the
    /// cached Deployment. `DesiredState.build` gives the body to write.
    public var comparable: DesiredState {
        var kept = self
        kept.policy.text = ""
        kept.initData = initData?.measurementOnly
        kept.spec.template = .null
        kept.deployment = condensedDeployment ?? PolicyDigest.project(object: deployment)
        return kept
    }

    /// What cwo remembers of a `comparable` state for every workload: the state without its Deployment,
    /// and the Deployment serialized (a quarter of the memory of its tree).
    /// Its texts are shared with other workloads' (see `StringInterner`): the conditions' messages and the
    /// policy's limits are built for each workload, and repeat for every workload of one shape.
    public var remembered: (state: DesiredState, deployment: CompactJSON) {
        var kept = self
        kept.deployment = [:]
        for index in kept.conditions.indices { kept.conditions[index].message = StringInterner.intern(kept.conditions[index].message) }
        kept.policy.limits = kept.policy.limits.map(StringInterner.intern)
        return (kept, CompactJSON(deployment))
    }

    /// The objects in apply order (the service account before the pods that use it).
    public var objects: [JSONValue] { [serviceAccount, configMap, deployment].compactMap { $0 } }

    /// The images the workload's pods run: the template's and those cwo adds (the attestation
    /// container's), so that every one is resolved and locked (the template's alone for a spec that does
    /// not parse); and whether the node pulls their layers (AKS), so that the policy needs their dm-verity
    /// root hashes (and the pause image's).
    public static func imageNeeds(_ workload: ConfidentialWorkload) -> (references: [String], hostPulledLayers: Bool) {
        guard case .success(let spec) = WorkloadSpec.parse(workload) else { return (templateImages(workload.spec?["template"]), false) }
        var template = DeploymentBuilder.podTemplate(for: workload, spec: spec)
        _ = spec.platform.artifacts.prepare(&template, workload: workload.metadata.name ?? "", spec: spec, context: BuildContext())
        return (templateImages(template), spec.platform == .aks)
    }

    static func templateImages(_ template: JSONValue?) -> [String] {
        let podSpec = template?["spec"]
        let containers = (podSpec?["initContainers"]?.arrayValue ?? []) + (podSpec?["containers"]?.arrayValue ?? [])
        return containers.compactMap { $0["image"]?.stringValue }
    }

    public static func build(_ workload: ConfidentialWorkload, context: BuildContext = BuildContext()) -> Result<DesiredState, SpecErrors> {
        let spec: WorkloadSpec
        switch WorkloadSpec.parse(workload, resolved: Set(context.imageFacts.keys)) {
        case .success(let parsed): spec = parsed
        case .failure(let errors): return .failure(errors)
        }
        let name = workload.metadata.name ?? ""
        let namespace = workload.metadata.namespace ?? ""
        var template = DeploymentBuilder.podTemplate(for: workload, spec: spec)

        let platform = spec.platform.artifacts
        let placement = platform.prepare(&template, workload: name, spec: spec, context: context)
        var imageFacts = ImageLock.apply(to: &template, facts: context.imageFacts, lock: spec.images.lockDigests)
        // Not a template image, but its layers are the node's to pull on AKS like the template's.
        if spec.platform == .aks, let pause = context.imageFacts[HostPulledLayers.aksPauseImage] {
            imageFacts[HostPulledLayers.aksPauseImage] = pause
        }

        // The policy is made from the final template: every container cwo added is in it.
        let policy: AgentPolicy
        switch spec.policy.mode {
        case .generated:
            policy = PolicyBuilder.generate(template: template, namespace: namespace, settings: spec.policy, workloadIdentity: spec.keyVault != nil,
                                            pods: .deployment(name), images: imageFacts)
        case .allowAll:
            policy = PolicyBuilder.allowAll()
        case .provided:
            guard let content = context.providedPolicy else {
                let problem = context.providedPolicyProblem
                    ?? "ConfigMap \(spec.policy.configMapName ?? "") (key \(spec.policy.configMapKey ?? "")) was not found"
                return .failure(SpecErrors([SpecError("spec.policy.configMapRef", problem, reason: "PolicyConfigMapNotFound")]))
            }
            switch PolicyBuilder.provided(content) {
            case .success(let provided): policy = provided
            case .failure(let error): return .failure(SpecErrors([error]))
            }
        }
        var metadata = template["metadata"]?.objectValue ?? [:]
        var annotations = metadata["annotations"]?.objectValue ?? [:]
        // What the TEE measures: the policy itself (AKS), or initdata holding it (CoCo).
        let delivery: PolicyDelivery
        switch platform.deliver(policy, spec: spec, context: context) {
        case .success(let delivered): delivery = delivered
        case .failure(let error): return .failure(SpecErrors([error]))
        }
        let delivered = delivery.annotations
        let initData = delivery.initData
        // The API server refuses annotations over 256 KiB in total; say so here rather than fail on apply.
        let annotationBytes = annotations.reduce(0) { $0 + $1.key.utf8.count + ($1.value.stringValue?.utf8.count ?? 0) }
            + delivered.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count }
        if annotationBytes > 256 * 1024 {
            let what = initData == nil
                ? "the agent policy for this template is \(policy.annotation.utf8.count / 1024) KiB as an annotation"
                : "the initdata for this template is \((delivered.values.map(\.utf8.count).max() ?? 0) / 1024) KiB as an annotation (gzipped)"
            return .failure(SpecErrors([SpecError(
                "spec.template", "\(what); pod annotations are limited to 256 KiB in total (large literal env values are in the policy: move them to a ConfigMap)",
                reason: initData == nil ? Reason.invalidSpec : Reason.initDataTooLarge)]))
        }
        for (key, value) in delivered { annotations[key] = .string(value) }
        metadata["annotations"] = .object(annotations)
        template["metadata"] = .object(metadata)

        let allowedHashes = [delivery.measurement] + Array(Set(context.runningHashes).subtracting([delivery.measurement])).sorted()
        var serviceAccount: JSONValue?
        var configMap: JSONValue?
        if let keyVault = spec.keyVault, let maa = spec.attestation.maaEndpoint {
            serviceAccount = Names.intent.stamp(KeyVaultBuilder.serviceAccount(for: workload, settings: keyVault))
            configMap = Names.intent.stamp(KeyVaultBuilder.configMap(for: workload, settings: keyVault, maaEndpoint: maa, hashes: allowedHashes))
        }
        // Each object carries the digest of what it is meant to be: a change of intent, a removal
        // included, is what makes cwo apply it again.
        let deployment = Names.intent.stampWithCondensed(DeploymentBuilder.deployment(for: workload, spec: spec, podTemplate: template))
        var state = DesiredState(
            spec: spec, policy: policy, placement: placement, initData: initData, allowedHashes: allowedHashes,
            deployment: deployment.body, condensedDeployment: deployment.condensed,
            serviceAccount: serviceAccount, configMap: configMap, conditions: [], imageFacts: imageFacts)
        state.conditions = ArtifactConditions.inputs(state, nativeSidecars: context.nativeSidecars)
        if let problems = context.imageProblems {
            state.conditions.append(ImagesResolved.condition(facts: context.imageFacts.filter { $0.key != HostPulledLayers.aksPauseImage }, problems: problems))
            state.images = (spec.initContainers + spec.containers).compactMap { container in
                context.imageFacts[container.image].map { ImageStatus(name: container.name, reference: container.image, digest: $0.digest) }
            }
        }
        return .success(state)
    }
}

/// The conditions that describe the generated artifacts (policy, attestation, key release).
public enum ArtifactConditions {
    public static func inputs(_ state: DesiredState, nativeSidecars: Bool) -> [ConditionInput] {
        let spec = state.spec
        var policyMessage: String
        let policyReason: String
        switch state.policy.mode {
        case .generated:
            policyReason = Reason.policyGenerated
            // The hash is status.policyHash: kept out of the message, which is then the same for every
            // workload of one shape, and shared by cwo's cache rather than held once per workload.
            policyMessage = "generated policy"
        case .provided:
            policyReason = Reason.policyProvided
            policyMessage = "provided policy from ConfigMap \(spec.policy.configMapName ?? "")"
        case .allowAll:
            policyReason = Reason.allowAllInsecure
            policyMessage = "INSECURE: the allow-all policy lets the host run anything in the VM"
        }
        if !state.policy.limits.isEmpty { policyMessage += "; not enforced: " + state.policy.limits.joined(separator: "; ") }
        if state.policy.mode == .generated {
            // Stricter than the image may need where cwo has not read the image's config (and, on AKS, its layers).
            let podSpec = state.deployment[path: ["spec", "template", "spec"]] ?? [:]
            let unresolved = ((podSpec["initContainers"]?.arrayValue ?? []) + (podSpec["containers"]?.arrayValue ?? []))
                .filter { state.imageFacts[$0["image"]?.stringValue ?? ""] == nil }
            var assumed: [String] = []
            if !unresolved.isEmpty {
                assumed.append("a container whose template sets no runAsUser/runAsGroup/workingDir runs as UID 0 in / (images not resolved: \(unresolved.compactMap { $0["name"]?.stringValue }.joined(separator: ", ")))")
            }
            if spec.platform == .aks {
                // Layers the node pulls are allowed only with the root hashes cwo computed from the registry.
                let unhashed = ((podSpec["initContainers"]?.arrayValue ?? []) + (podSpec["containers"]?.arrayValue ?? []))
                    .filter { state.imageFacts[$0["image"]?.stringValue ?? ""]?.tarfsLayers?.isEmpty ?? true }
                    .compactMap { $0["name"]?.stringValue }
                let pauseHashed = !(state.imageFacts[HostPulledLayers.aksPauseImage]?.tarfsLayers?.isEmpty ?? true)
                let denied = (pauseHashed ? [] : ["the pause container"]) + unhashed
                if !denied.isEmpty {
                    assumed.append("image layers pulled on the host (dm-verity) are allowed only with the root hashes cwo computed from the registry (cwo run --hash-image-layers), so these images must be pulled in the guest: \(denied.joined(separator: ", "))")
                }
            }
            if !assumed.isEmpty { policyMessage += "; assumed without the image config: " + assumed.joined(separator: "; ") }
        }
        if !spec.warnings.isEmpty { policyMessage += "; warnings: " + spec.warnings.joined(separator: "; ") }

        let attestation: ConditionInput
        switch state.placement {
        case nil where spec.platform == .coco:
            attestation = ConditionInput(
                ConditionType.attestationConfigured, .true, "AttestationInGuest",
                spec.kbs.map { "the guest's attestation agent attests to \($0.url) (aa.toml in initdata)" }
                    ?? "the guest's attestation agent runs without a key broker: no spec.kbs")
        case nil:
            attestation = ConditionInput(ConditionType.attestationConfigured, .true, "AttestationDisabled", "no attestation container (spec.attestation.enabled: false)")
        case .initContainer?:
            attestation = ConditionInput(ConditionType.attestationConfigured, .true, "AttestationContainerAdded", "attestation runs as a native sidecar (init container with restartPolicy Always)")
        case .sidecar?:
            let fellBack = spec.attestation.placement == .initContainer && !nativeSidecars
            attestation = ConditionInput(
                ConditionType.attestationConfigured, .true, "AttestationContainerAdded",
                fellBack ? "attestation runs as a sidecar container: this server has no native sidecars (Kubernetes 1.29+), so placement InitContainer fell back to Sidecar"
                    : "attestation runs as a sidecar container")
        }

        let keyRelease: ConditionInput
        if let kbs = spec.kbs {
            keyRelease = ConditionInput(
                ConditionType.keyReleaseBound, .unknown, "ResourcePolicyPending",
                "cwo has not brought the resource policy of \(kbs.url) to initdata digest \(state.allowedHashes.first ?? "") yet")
        } else if spec.platform == .coco {
            keyRelease = ConditionInput(ConditionType.keyReleaseBound, .true, "KBSNotConfigured", "no spec.kbs: no secrets are bound to this workload")
        } else if let keyVault = spec.keyVault, keyVault.releasePolicy == .managed {
            keyRelease = ConditionInput(
                ConditionType.keyReleaseBound, .unknown, "ReleasePolicyPending",
                "cwo has not brought the release policy of \(keyVault.keyID) to policy hash \(state.policy.hash) yet")
        } else if let keyVault = spec.keyVault {
            let hashes = state.allowedHashes.joined(separator: ", ")
            keyRelease = ConditionInput(
                ConditionType.keyReleaseBound, .true, "ReleasePolicyPublished",
                "release policy for \(state.allowedHashes.count == 1 ? "hash" : "hashes") \(hashes) is in ConfigMap \(KeyVaultBuilder.configMapName(workload: state.deploymentName)); apply it with: \(KeyVaultBuilder.azCommand(keyVault))")
        } else {
            keyRelease = ConditionInput(ConditionType.keyReleaseBound, .true, "KeyVaultNotConfigured", "no spec.keyVault: no key is bound to this workload")
        }
        var conditions = [ConditionInput(ConditionType.policyReady, .true, policyReason, policyMessage), attestation, keyRelease]
        if let initData = state.initData {
            let tee = spec.coco?.tee ?? .snp
            let register = initData.register(tee).map { " (\(tee.rawValue) \($0.name) \($0.value.hexString))" } ?? " (no TEE: nothing is measured)"
            conditions.insert(
                ConditionInput(ConditionType.initDataReady, .true, Reason.initDataGenerated, "initdata \(initData.algorithm.rawValue) \(initData.digestHex)\(register)"),
                at: 1)
        }
        return conditions
    }
}

extension DesiredState {
    var deploymentName: String { deployment[path: ["metadata", "name"]]?.stringValue ?? "" }
}
