import ControllerRuntime

/// cwo's own metrics, beside controller-runtime's in the same registry.
extension OperatorMetrics {
    /// `cwo_workloads{ready}`: workloads by the status of their Ready condition.
    public func workloads(ready: [String: Int]) {
        for status in ["True", "False", "Unknown"] {
            setGauge("cwo_workloads", labels: [("ready", status)], help: "ConfidentialWorkloads by the status of their Ready condition.", to: Double(ready[status, default: 0]))
        }
    }

    /// `cwo_policy_generation_seconds`: how long building a workload's desired state (policy included) took.
    public func policyGenerated(seconds: Double) {
        record("cwo_policy_generation_seconds", help: "Time to build a workload's desired objects, agent policy included.", seconds)
    }

    /// `cwo_key_vault_requests_total{code,method}`: calls to Key Vault and the Azure identity endpoint.
    public func keyVaultRequest(method: String, code: String) {
        increment(
            "cwo_key_vault_requests_total", labels: [("code", code), ("method", method)],
            help: "Number of HTTP requests to Key Vault and the Azure identity endpoint, by method and status code.")
    }
}
