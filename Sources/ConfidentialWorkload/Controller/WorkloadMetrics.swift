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

    /// `cwo_registry_requests_total{code}`: HTTP requests to image registries (and their token services).
    public static func registryRequest(code: String) {
        Counter(label: "cwo_registry_requests_total", dimensions: [("code", code)]).increment()
    }

    /// `cwo_image_lookups_total` and `cwo_image_facts_cache_bytes`/`_entries`: resolutions of one image
    /// (with one workload's credentials), and what the cache of their answers holds.
    static func imageLookup(cacheEntries: Int, cacheBytes: Int) {
        Counter(label: "cwo_image_lookups_total").increment()
        Gauge(label: "cwo_image_facts_cache_entries").record(cacheEntries)
        Gauge(label: "cwo_image_facts_cache_bytes").record(cacheBytes)
    }
}
