import CoreMetrics

/// controller-runtime's metrics, with its names and labels, so existing dashboards and alerts work,
/// recorded through the swift-metrics API: the executable chooses the backend (cwo: Prometheus, with
/// the buckets below) and a library user may choose another.
public enum OperatorMetrics {
    /// controller-runtime's reconcile-time buckets.
    public static let reconcileBuckets: [Double] = [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5,
        3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60,
    ]
    /// client-go's workqueue buckets (10^-8 .. 10^1 seconds).
    public static let queueBuckets: [Double] = (-8...1).map { pow10($0) }
    static func pow10(_ exponent: Int) -> Double { exponent >= 0 ? (0..<exponent).reduce(1.0) { r, _ in r * 10 } : 1 / pow10(-exponent) }

    /// The histograms and their buckets, for the backend's configuration.
    public static var histogramBuckets: [String: [Double]] {
        [
            "controller_runtime_reconcile_time_seconds": reconcileBuckets, "workqueue_work_duration_seconds": queueBuckets,
            "workqueue_queue_duration_seconds": queueBuckets, "rest_client_request_duration_seconds": requestBuckets,
        ]
    }

    /// client-go's request-latency buckets.
    public static let requestBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60]

    /// `rest_client_requests_total{code,method,host}` and `rest_client_request_duration_seconds{verb,host}`.
    public static func request(method: String, code: String, host: String, duration: Duration) {
        Counter(label: "rest_client_requests_total", dimensions: [("code", code), ("method", method), ("host", host)]).increment()
        Recorder(label: "rest_client_request_duration_seconds", dimensions: [("verb", method), ("host", host)])
            .record(Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
    }

    /// `leader_election_master_status{name}`.
    public static func leader(_ name: String, isLeader: Bool) {
        Gauge(label: "leader_election_master_status", dimensions: [("name", name)]).record(isLeader ? 1 : 0)
    }

    /// The `controller_runtime_*` and `workqueue_*` metrics of one controller, zeroed so they show before
    /// the first reconcile.
    public static func controllerObserver(_ controller: String, concurrency: Int) -> any ControllerObserver & WorkQueueObserver {
        let metrics = ControllerMetrics(controller: controller)
        Gauge(label: "controller_runtime_max_concurrent_reconciles", dimensions: [("controller", controller)]).record(concurrency)
        metrics.activeWorkers(controller: controller, count: 0)
        metrics.errors.increment(by: 0)
        for counter in metrics.results.values { counter.increment(by: 0) }
        metrics.depthChanged(0)
        return metrics
    }
}

struct ControllerMetrics: ControllerObserver, WorkQueueObserver {
    let controller: String
    let results: [String: Counter]
    let errors: Counter
    let reconcileTime: Recorder
    let workDuration: Recorder
    let queueDuration: Recorder
    let adds: Counter
    let depth: Gauge
    let retries: Counter
    let active: Gauge

    init(controller: String) {
        self.controller = controller
        let labels = [("controller", controller)]
        let queueLabels = [("name", controller), ("controller", controller)]
        results = Dictionary(uniqueKeysWithValues: ["success", "error", "requeue", "requeue_after"].map { result in
            (result, Counter(label: "controller_runtime_reconcile_total", dimensions: labels + [("result", result)]))
        })
        errors = Counter(label: "controller_runtime_reconcile_errors_total", dimensions: labels)
        reconcileTime = Recorder(label: "controller_runtime_reconcile_time_seconds", dimensions: labels)
        active = Gauge(label: "controller_runtime_active_workers", dimensions: labels)
        workDuration = Recorder(label: "workqueue_work_duration_seconds", dimensions: queueLabels)
        queueDuration = Recorder(label: "workqueue_queue_duration_seconds", dimensions: queueLabels)
        adds = Counter(label: "workqueue_adds_total", dimensions: queueLabels)
        depth = Gauge(label: "workqueue_depth", dimensions: queueLabels)
        retries = Counter(label: "workqueue_retries_total", dimensions: queueLabels)
    }

    func reconciled(controller: String, result: String, duration: Duration) {
        results[result]?.increment()
        if result == "error" { errors.increment() }
        reconcileTime.record(duration.seconds)
        workDuration.record(duration.seconds)
    }

    func activeWorkers(controller: String, count: Int) { active.record(count) }
    func added() { adds.increment() }
    func depthChanged(_ depth: Int) { self.depth.record(depth) }
    func waited(_ duration: Duration) { queueDuration.record(duration.seconds) }
    func retried() { retries.increment() }
}

extension Duration {
    public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
