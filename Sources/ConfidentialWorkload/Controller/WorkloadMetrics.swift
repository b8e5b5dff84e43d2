import CoreMetrics

/// cwo's own metrics, beside controller-runtime's (swift-metrics; the executable picks the backend).
public enum WorkloadMetrics {
    /// `cwo_workloads{ready}`: workloads by the status of their Ready condition.
    public static func workloads(ready: [String: Int]) {
        for status in ["True", "False", "Unknown"] {
            Gauge(label: "cwo_workloads", dimensions: [("ready", status)]).record(ready[status, default: 0])
        }
    }

    /// `cwo_policy_generation_seconds`: how long building a workload's desired state (policy included) took.
    static func policyGenerated(seconds: Double) {
        Recorder(label: "cwo_policy_generation_seconds").record(seconds)
    }

    /// `cwo_key_vault_requests_total{code,method}`: calls to Key Vault and the Azure identity endpoint.
    public static func keyVaultRequest(method: String, code: String) {
        Counter(label: "cwo_key_vault_requests_total", dimensions: [("code", code), ("method", method)]).increment()
    }
}
