import Prometheus

/// controller-runtime's metrics, with its names and labels, so existing dashboards and alerts work.
public final class OperatorMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry

    /// controller-runtime's reconcile-time buckets.
    static let reconcileBuckets: [Double] = [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5,
        3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60,
    ]
    /// client-go's workqueue buckets (10^-8 .. 10^1 seconds).
    public static let queueBuckets: [Double] = (-8...1).map { pow10($0) }
    static func pow10(_ exponent: Int) -> Double { exponent >= 0 ? (0..<exponent).reduce(1.0) { r, _ in r * 10 } : 1 / pow10(-exponent) }

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
    }

    public func text() -> String { registry.emitToString() }

    // Metrics of the application built on the runtime, in the same registry.

    public func setGauge(_ name: String, labels: [(String, String)] = [], help: String, to value: Double) {
        registry.makeGauge(name: name, labels: labels, help: help).set(to: value)
    }

    public func increment(_ name: String, labels: [(String, String)] = [], help: String) {
        registry.makeCounter(name: name, labels: labels, help: help).increment()
    }

    public func record(_ name: String, labels: [(String, String)] = [], buckets: [Double] = queueBuckets, help: String, _ value: Double) {
        registry.makeValueHistogram(name: name, labels: labels, buckets: buckets, help: help).record(value)
    }

    /// `rest_client_requests_total{code,method,host}`.
    public func request(method: String, code: String, host: String) {
        registry.makeCounter(name: "rest_client_requests_total", labels: [("code", code), ("method", method), ("host", host)],
            help: "Number of HTTP requests, partitioned by status code, method, and host.").increment()
    }

    public func leader(_ name: String, isLeader: Bool) {
        registry.makeGauge(name: "leader_election_master_status", labels: [("name", name)],
            help: "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master.")
            .set(to: isLeader ? 1.0 : 0.0)
    }


    public func controllerObserver(_ controller: String, concurrency: Int) -> any ControllerObserver & WorkQueueObserver {
        registry.makeGauge(name: "controller_runtime_max_concurrent_reconciles", labels: [("controller", controller)],
            help: "Maximum number of concurrent reconciles per controller").set(to: Double(concurrency))
        registry.makeGauge(name: "controller_runtime_active_workers", labels: [("controller", controller)],
            help: "Number of currently used workers per controller").set(to: 0.0)
        registry.makeCounter(name: "controller_runtime_reconcile_errors_total", labels: [("controller", controller)],
            help: "Total number of reconciliation errors per controller").increment(by: Int64(0))
        for result in ["success", "error", "requeue", "requeue_after"] {
            registry.makeCounter(name: "controller_runtime_reconcile_total", labels: [("controller", controller), ("result", result)],
                help: "Total number of reconciliations per controller").increment(by: Int64(0))
        }
        let metrics = ControllerMetrics(registry: registry, controller: controller)
        metrics.depthChanged(0)
        return metrics
    }
}

struct ControllerMetrics: ControllerObserver, WorkQueueObserver {
    let registry: PrometheusCollectorRegistry
    let controller: String

    var queueLabels: [(String, String)] { [("name", controller), ("controller", controller)] }

    func reconciled(controller: String, result: String, duration: Duration) {
        registry.makeCounter(name: "controller_runtime_reconcile_total", labels: [("controller", controller), ("result", result)],
            help: "Total number of reconciliations per controller").increment()
        if result == "error" {
            registry.makeCounter(name: "controller_runtime_reconcile_errors_total", labels: [("controller", controller)],
                help: "Total number of reconciliation errors per controller").increment()
        }
        let seconds = duration.seconds
        registry.makeValueHistogram(name: "controller_runtime_reconcile_time_seconds", labels: [("controller", controller)],
            buckets: OperatorMetrics.reconcileBuckets, help: "Length of time per reconciliation per controller").record(seconds)
        registry.makeValueHistogram(name: "workqueue_work_duration_seconds", labels: queueLabels, buckets: OperatorMetrics.queueBuckets,
            help: "How long in seconds processing an item from workqueue takes.").record(seconds)
    }

    func activeWorkers(controller: String, count: Int) {
        registry.makeGauge(name: "controller_runtime_active_workers", labels: [("controller", controller)],
            help: "Number of currently used workers per controller").set(to: Double(count))
    }

    func added() {
        registry.makeCounter(name: "workqueue_adds_total", labels: queueLabels, help: "Total number of adds handled by workqueue").increment()
    }

    func depthChanged(_ depth: Int) {
        registry.makeGauge(name: "workqueue_depth", labels: queueLabels, help: "Current depth of workqueue").set(to: Double(depth))
    }

    func waited(_ duration: Duration) {
        registry.makeValueHistogram(name: "workqueue_queue_duration_seconds", labels: queueLabels, buckets: OperatorMetrics.queueBuckets,
            help: "How long in seconds an item stays in workqueue before being requested").record(duration.seconds)
    }

    func retried() {
        registry.makeCounter(name: "workqueue_retries_total", labels: queueLabels, help: "Total number of retries handled by workqueue").increment()
    }
}

extension Duration {
    public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
