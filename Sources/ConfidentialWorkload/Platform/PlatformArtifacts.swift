import KubernetesClient

/// What one confidential platform adds to a pod: the containers and bindings it needs before the policy
/// is generated (attestation, identity), and how the policy reaches the guest and is measured. AKS and
/// upstream CoCo are the two; a third platform is one more conformance.
protocol PlatformArtifacts: Sendable {
    /// Adds what the platform's pods need to the template; returns where the attestation container went.
    func prepare(_ template: inout JSONValue, workload: String, spec: WorkloadSpec, context: BuildContext) -> AttestationSettings.Placement?

    /// The template annotations that carry `policy` into the guest, and what the TEE will measure.
    func deliver(_ policy: AgentPolicy, spec: WorkloadSpec, context: BuildContext) -> Result<PolicyDelivery, SpecError>
}

/// How a policy reaches the guest.
struct PolicyDelivery {
    /// Template annotations (the policy or initdata, and the measurement cwo tracks rollouts by).
    var annotations: [String: String]
    /// What the TEE measures, lowercase hex: the policy hash (AKS) or the initdata digest (CoCo).
    var measurement: String
    var initData: InitData?
}

extension Platform {
    var artifacts: any PlatformArtifacts {
        switch self {
        case .aks: AKSArtifacts()
        case .coco: CoCoArtifacts()
        }
    }
}

/// AKS: the SKR attestation container, the Key Vault identity binding, and the policy itself in
/// `io.katacontainers.config.agent.policy` (its SHA-256 is HOST_DATA).
struct AKSArtifacts: PlatformArtifacts {
    func prepare(_ template: inout JSONValue, workload: String, spec: WorkloadSpec, context: BuildContext) -> AttestationSettings.Placement? {
        var placement: AttestationSettings.Placement?
        if spec.attestation.enabled {
            let effective = AttestationBuilder.effectivePlacement(spec.attestation, nativeSidecars: context.nativeSidecars)
            AttestationBuilder.add(to: &template, settings: spec.attestation, placement: effective)
            placement = effective
        }
        if let keyVault = spec.keyVault, let maa = spec.attestation.maaEndpoint {
            KeyVaultBuilder.bind(&template, workload: workload, settings: keyVault, maaEndpoint: maa)
        }
        return placement
    }

    func deliver(_ policy: AgentPolicy, spec: WorkloadSpec, context: BuildContext) -> Result<PolicyDelivery, SpecError> {
        .success(PolicyDelivery(
            annotations: [AgentPolicy.annotationKey: policy.annotation, AgentPolicy.hashAnnotationKey: policy.hash], measurement: policy.hash))
    }
}

/// Upstream Confidential Containers: nothing added to the pod (the guest attests itself); the policy goes
/// into initdata with the attestation agent's and data hub's configuration, and its digest is measured.
struct CoCoArtifacts: PlatformArtifacts {
    func prepare(_ template: inout JSONValue, workload: String, spec: WorkloadSpec, context: BuildContext) -> AttestationSettings.Placement? {
        nil
    }

    func deliver(_ policy: AgentPolicy, spec: WorkloadSpec, context: BuildContext) -> Result<PolicyDelivery, SpecError> {
        let settings = spec.coco ?? CoCoSettings()
        var kbs: (url: String, certificate: String?)?
        if let broker = spec.kbs {
            if let configMap = broker.caConfigMap, context.kbsCertificate == nil {
                let problem = context.kbsCertificateProblem ?? "ConfigMap \(configMap.name) (key \(configMap.key)) was not found"
                return .failure(SpecError("spec.kbs.caConfigMapRef", problem, reason: "KBSCertificateNotFound"))
            }
            kbs = (broker.url, context.kbsCertificate)
        }
        let initData = InitData(policy: policy.text, kbs: kbs, extra: settings.extraData, algorithm: settings.algorithm)
        let key = settings.annotation == .legacy ? InitData.legacyAnnotation : InitData.currentAnnotation
        return .success(PolicyDelivery(
            annotations: [key: initData.annotationValue, InitData.digestAnnotation: initData.digestHex], measurement: initData.digestHex,
            initData: initData))
    }
}
