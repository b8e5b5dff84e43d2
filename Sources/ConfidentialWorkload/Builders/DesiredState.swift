import KubernetesClient

/// Everything cwo wants to exist for one workload, computed without a cluster.
///
/// The controller applies exactly these objects, and `cwo render` prints exactly these objects:
/// both call `DesiredState.build`, so offline output and in-cluster state cannot drift apart.
public struct DesiredState: Sendable {
    public var spec: WorkloadSpec
    public var deployment: JSONValue

    /// The objects in apply order.
    public var objects: [JSONValue] { [deployment] }

    public static func build(_ workload: ConfidentialWorkload) -> Result<DesiredState, SpecErrors> {
        WorkloadSpec.parse(workload).map { spec in
            DesiredState(spec: spec, deployment: DeploymentBuilder.deployment(for: workload, spec: spec))
        }
    }
}
