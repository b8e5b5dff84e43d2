// cwo-bench: latency, throughput, memory, API efficiency and startup of `cwo run`, measured against a
// real kube-apiserver + etcd on this machine, side by side with a plain client doing the same writes.
import CMallocStats
import ConfidentialWorkload
import Foundation
import KubernetesClient
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

struct Options {
    var sizes = [100, 1000]
    var concurrencies = [1, 4, 16]
    var runs = 3
    var latencySamples = 500
    var quietSeconds = 60
    var output = "bench.json"
    var cwo = ".build/release/cwo"
    /// Workloads of the image-resolution figure (0: skip it) and the images they share.
    var imageWorkloads: Int?
    var images = 10
    /// ReplicaSets of the protobuf-vs-JSON figure (0: skip it).
    var replicaSets = 500
    /// Desired-state builds timed in section 0; `--only-build` stops after it (for a profiler).
    var builds = 2000
    var onlyBuild = false
    /// Flags added to every `cwo run` the benchmark starts (`--cwo-flag --no-release-idle-code`), to compare.
    var cwoFlags: [String] = []
    /// Runs the raw floor of the first convergence run before cwo's instead of after; later runs alternate
    /// the order, so that what the machine does over the minutes of a pair weighs on both sides alike.
    var rawFirst = false

    /// Whether the raw floor goes first in convergence run `run` (from 0).
    func rawFloorFirst(inRun run: Int) -> Bool { run.isMultiple(of: 2) == rawFirst }

    init(_ arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        while let flag = iterator.next() {
            let value = iterator.next() ?? ""
            switch flag {
            case "--sizes": sizes = value.split(separator: ",").compactMap { Int($0) }
            case "--concurrency": concurrencies = value.split(separator: ",").compactMap { Int($0) }
            case "--runs": runs = Int(value) ?? runs
            case "--latency-samples": latencySamples = Int(value) ?? latencySamples
            case "--quiet-seconds": quietSeconds = Int(value) ?? quietSeconds
            case "--output": output = value
            case "--cwo": cwo = value
            case "--image-workloads": imageWorkloads = Int(value)
            case "--images": images = Int(value) ?? images
            case "--replicasets": replicaSets = Int(value) ?? replicaSets
            case "--builds": builds = Int(value) ?? builds
            case "--only-build": onlyBuild = value == "true" || value == "1"
            case "--cwo-flag": cwoFlags.append(value)
            case "--raw-first": rawFirst = value == "true" || value == "1"
            default:
                FileHandle.standardError.write(Data("cwo-bench: unknown flag \(flag); flags: --sizes --concurrency --runs --latency-samples --quiet-seconds --output --cwo --image-workloads --images --replicasets --builds --only-build --cwo-flag --raw-first\n".utf8))
                exit(2)
            }
        }
    }
}

let options = Options(CommandLine.arguments)
var results: [String: JSONValue] = [:]
var table: [(String, String)] = []
@MainActor func report(_ key: String, _ value: Double, _ label: String, unit: String) {
    results[key] = .number((value * 1000).rounded() / 1000)
    table.append((label, String(format: unit == "ms" || unit == "s" || unit == "MiB" || unit == "x" ? "%.3f %@" : "%.1f %@", value, unit)))
    print(String(format: "%-70@ %@", label as NSString, table.last?.1 ?? ""))
    fflush(nil)  // one line at a time, also into a file
}

func seconds(_ duration: Duration) -> Double { Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18 }
func percentile(_ values: [Double], _ p: Double) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return 0 }
    return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
}

/// The median: the middle value, or the mean of the two middle ones of an even count.
func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return 0 }
    return (sorted[(sorted.count - 1) / 2] + sorted[sorted.count / 2]) / 2
}

/// VmRSS (now) or VmHWM (peak) of a process, in MiB.
func rssMiB(_ pid: pid_t, field: String = "VmRSS:") -> Double {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
        let line = text.split(separator: "\n").first(where: { $0.hasPrefix(field) })
    else { return 0 }
    return (Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) / 1024
}

/// The fields of /proc/PID/stat after the command: `[0]` is field 3 (state), field N is `[N - 3]`.
func procStat(_ pid: pid_t) -> [Substring] {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = text.lastIndex(of: ")")
    else { return [] }
    return text[text.index(after: close)...].split(separator: " ")
}

/// CPU seconds (user + system) a process has used so far.
func cpuSeconds(_ pid: pid_t) -> Double {
    let fields = procStat(pid)
    // utime is field 14, stime 15.
    guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// Page faults of a process so far that had to read from the file (field 12, majflt): what cwo pays for
/// having handed its idle code pages back.
func majorFaults(_ pid: pid_t) -> Double {
    let fields = procStat(pid)
    return fields.count > 9 ? Double(fields[9]) ?? 0 : 0
}

/// Bytes a process has passed through read() and write() so far (/proc/PID/io `rchar`, `wchar`): for
/// cwo nearly all of it is its connections to the API server (its watches, requests and answers).
func ioBytes(_ pid: pid_t) -> (read: Double, written: Double) {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/io", encoding: .utf8) else { return (0, 0) }
    func field(_ name: String) -> Double {
        text.split(separator: "\n").first { $0.hasPrefix(name) }.flatMap { Double($0.dropFirst(name.count).trimmingCharacters(in: .whitespaces)) } ?? 0
    }
    return (field("rchar:"), field("wchar:"))
}

func heapInUse() -> Int { Int(cwo_heap_in_use()) }

/// A paged list, started again when a compaction expired its continue token (410): at 10 000 objects a
/// list takes long enough to meet one.
func listAllAgain<T: Decodable & Sendable>(_ resource: Resource, namespace: String, options: ListOptions, as type: T.Type) async throws -> ObjectList<T> {
    var attempt = 0
    while true {
        do {
            return try await client.listAll(resource, namespace: namespace, options: options, as: type)
        } catch let error as KubeError where error.reason == .gone && attempt < 3 {
            attempt += 1
        }
    }
}

/// What each kind of per-workload data costs when held as cwo holds it, measured in this process on the
/// objects the API server holds for `count` converged workloads: the workload (spec and status, managed
/// fields dropped, spec serialized), its Deployment (policy annotation replaced by its digest, spec serialized;
/// then settled: spec summarized), and the remembered desired state (policy text dropped, Deployment serialized).
@MainActor func memoryBreakdown(namespace: String, count: Int) async throws {
    var options = ListOptions()
    options.dropManagedFields = true
    var start = heapInUse()
    var cachedWorkloads: [ConfidentialWorkload] = []
    do {
        let live = try await listAllAgain(workloads, namespace: namespace, options: options, as: ConfidentialWorkload.self).items
        cachedWorkloads = live.map(WorkloadCaches.cached)
    }
    let workloadBytes = heapInUse() - start
    start = heapInUse()
    var cachedDeployments: [Deployment] = []
    do {
        let live = try await listAllAgain(.deployments, namespace: namespace, options: options, as: Deployment.self).items
        cachedDeployments = live.map(WorkloadCaches.cached)
    }
    let deploymentBytes = heapInUse() - start
    // Once a reconcile (or the echo of cwo's apply) found it up to date: its spec summarized.
    start = heapInUse()
    var settledDeployments: [Deployment] = []
    do {
        let live = try await listAllAgain(.deployments, namespace: namespace, options: options, as: Deployment.self).items
        settledDeployments = live.map { WorkloadCaches.settled(WorkloadCaches.cached($0)) }
    }
    let settledDeploymentBytes = heapInUse() - start
    start = heapInUse()
    // As the reconciler remembers each workload's desired state.
    let remembered = cachedWorkloads.map { workload in
        DesiredState.build(workload.expanded(), context: BuildContext(nativeSidecars: true)).map { $0.comparable.remembered }
    }
    let memoBytes = heapInUse() - start
    let n = Double(max(count, 1))
    report("memory.\(count).bytes_per_workload.workload", Double(workloadBytes) / n, "4. bytes per workload: the workload (spec + status)", unit: "B")
    report("memory.\(count).bytes_per_workload.deployment", Double(deploymentBytes) / n, "   bytes per workload: its Deployment, projected (as a watch event brings it)", unit: "B")
    report("memory.\(count).bytes_per_workload.deployment_settled", Double(settledDeploymentBytes) / n, "   bytes per workload: its Deployment once settled (spec summarized)", unit: "B")
    report("memory.\(count).bytes_per_workload.desired_state", Double(memoBytes) / n, "   bytes per workload: its remembered desired state (kept 30-60 s after a reconcile)", unit: "B")
    withExtendedLifetime((cachedWorkloads, cachedDeployments, settledDeployments, remembered)) {}
}

// MARK: 0. the desired-state build alone, in this process: what a reconcile computes for a new workload
// (the policy, its digest for the comparison, the Deployment), on one core, before any cluster runs.
do {
    // A workload of its own name for every build, as cwo meets them (nothing keyed by the name is reused).
    let parsedWorkloads = try (0..<(options.builds + 100)).map { round in
        var object = workload("w-\(round)")
        object["metadata"]?["namespace"] = "bench"
        object["metadata"]?["generation"] = 1
        return try object.decode(as: ConfidentialWorkload.self).compacted().expanded()
    }
    let context = BuildContext(nativeSidecars: true)
    var micros: [Double] = []
    for (round, parsed) in parsedWorkloads.enumerated() {
        let start = ContinuousClock.now
        let built = DesiredState.build(parsed, context: context)
        let comparable = built.map(\.comparable)
        if round >= 100 { micros.append(seconds(ContinuousClock.now - start) * 1e6) }
        guard case .success = comparable else { throw TestClusterError(message: "the bench workload does not build") }
    }
    if !micros.isEmpty {
        report("build.p50_us", percentile(micros, 0.5), "0. desired-state build of a new workload, p50 (\(micros.count) builds, in-process)", unit: "us")
        report("build.p99_us", percentile(micros, 0.99), "   p99", unit: "us")
    }
    // The same builds with the CPU caches evicted before each (64 MB read and written, beyond this
    // machine's L2 and L3): in cwo the API server and etcd run between two workloads, and a build
    // there costs this figure, not the one above.
    var eviction = [UInt64](repeating: 0, count: 64 << 17)
    var cold: [Double] = []
    for parsed in parsedWorkloads.suffix(min(200, options.builds)) {
        eviction.withUnsafeMutableBufferPointer { words in
            for index in stride(from: 0, to: words.count, by: 8) { words[index] &+= 1 }
        }
        let start = ContinuousClock.now
        let comparable = DesiredState.build(parsed, context: context).map(\.comparable)
        cold.append(seconds(ContinuousClock.now - start) * 1e6)
        withExtendedLifetime(comparable) {}
    }
    if !cold.isEmpty {
        report("build.cold_p50_us", percentile(cold, 0.5), "   p50 with the CPU caches evicted before each build (\(cold.count) builds), as in cwo", unit: "us")
    }
    withExtendedLifetime(eviction) {}
    if options.onlyBuild { exit(0) }
}

// MARK: the cluster

setenv("CWO_CONTROLLER_MANAGER", "0", 1)  // measure cwo and the API server, not the Deployment controller
let cluster = try await TestCluster.start(name: "bench")
var configuration = try ClientConfiguration.load(kubeconfig: cluster.adminKubeconfig)
configuration.userAgent = "cwo-bench"
let client = try KubeClient(configuration: configuration)
let apiserverPID = pid_t((try? String(contentsOfFile: cluster.directory + "/apiserver.pid", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
let etcdPID = pid_t((try? String(contentsOfFile: cluster.directory + "/etcd.pid", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
func serverCPU() -> Double { cpuSeconds(apiserverPID) + cpuSeconds(etcdPID) }

/// Waits until kube-apiserver and etcd are idle (under a tenth of a core for a second; at most 30 s),
/// so that no side of a pair starts while the server still works off the other (etcd's compaction,
/// the API server's garbage collection).
func settle() async throws {
    let deadline = ContinuousClock.now + .seconds(30)
    var before = serverCPU()
    while ContinuousClock.now < deadline {
        try await Task.sleep(for: .seconds(1))
        let now = serverCPU()
        if now - before < 0.1 { return }
        before = now
    }
}

/// Deletes a measured run's workloads and Deployments, so that the next side of the pair does not work
/// against an etcd and a watch cache holding them (at 10 000, ~1 GB), then waits for the server to settle.
func clear(_ namespace: String) async throws {
    for resource in [workloads, Resource.deployments] {
        try await client.deleteCollection(resource, namespace: namespace)
        while true {
            let left: ObjectList<PartialObjectMetadata> = try await client.list(resource, namespace: namespace, options: .init(limit: 1))
            if left.items.isEmpty { break }
            try await Task.sleep(for: .seconds(1))
        }
    }
    try await settle()
}
try await cluster.installCRDs(client)
let _: UntypedObject = try await client.apply(.runtimeClasses, name: "kata-cc",
    ["apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": ["name": "kata-cc"], "handler": "kata-cc"] as JSONValue, fieldManager: "bench", force: true)
let workloads = Resource(group: "cwo.dev", version: "v1alpha1", plural: "confidentialworkloads", kind: "ConfidentialWorkload", namespaced: true)

func workload(_ name: String) -> JSONValue {
    ["apiVersion": "cwo.dev/v1alpha1", "kind": "ConfidentialWorkload", "metadata": ["name": .string(name)],
     "spec": ["replicas": 1, "template": ["spec": ["containers": [["name": "app", "image": "nginx@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        "command": ["/app"], "resources": ["limits": ["memory": "256Mi"]]]]]]]]
}

/// What cwo writes for a new workload: its Deployment and its status (as the reconciler builds them).
func rawWrites(name: String, namespace: String) throws -> (deployment: JSONValue, status: JSONValue) {
    var object = workload(name)
    object["metadata"]?["namespace"] = .string(namespace)
    object["metadata"]?["generation"] = 1
    let parsed = try object.decode(as: ConfidentialWorkload.self)
    let state = try DesiredState.build(parsed, context: BuildContext(nativeSidecars: false)).get()
    var observation = Observation(generation: 1, deploymentName: name, specErrors: nil, runtimeClassName: state.spec.runtimeClassName, runtimeClassExists: true, deployment: nil)
    observation.artifactConditions = state.conditions
    observation.policyHash = state.policy.hash
    observation.policyMode = state.policy.mode.rawValue
    let status = StatusBuilder.status(observation, previous: nil, now: StatusBuilder.timestamp())
    let body: JSONValue = ["apiVersion": "cwo.dev/v1alpha1", "kind": "ConfidentialWorkload", "metadata": ["name": .string(name), "namespace": .string(namespace)],
        "status": try JSONValue(encoding: status)]
    return (state.deployment, body)
}

/// Runs `body` for 0..<count with at most `width` in flight.
func concurrently(_ count: Int, width: Int, _ body: @escaping @Sendable (Int) async throws -> Void) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        var next = 0
        while next < min(width, count) { let i = next; group.addTask { try await body(i) }; next += 1 }
        while try await group.next() != nil {
            if next < count { let i = next; group.addTask { try await body(i) }; next += 1 }
        }
    }
}

final class Operator: @unchecked Sendable {
    let process: BackgroundProcess
    let metricsPort = freePort()
    let probePort = freePort()
    let started = ContinuousClock.now
    /// `extra`: by default no image resolution (the workloads name images by digest on a registry this
    /// machine cannot reach); the image figure passes its registry instead.
    init(namespace: String, concurrency: Int, extra: [String] = ["--no-resolve-images"]) throws {
        process = try BackgroundProcess([options.cwo, "run", "--kubeconfig", cluster.adminKubeconfig, "--namespace", namespace,
            "--concurrency", String(concurrency), "--log-level", "warning",
            "--metrics-bind-address", "127.0.0.1:\(metricsPort)", "--health-probe-bind-address", "127.0.0.1:\(probePort)"] + extra + options.cwoFlags)
    }
    /// The mean of a histogram (its `_sum` over its `_count`, over the series `filter` keeps), in ms.
    func meanMilliseconds(_ name: String, where filter: (String) -> Bool = { _ in true }) async -> Double {
        let values = await metrics()
        let sum = values.filter { $0.key.hasPrefix(name + "_sum") && filter($0.key) }.values.reduce(0, +)
        let count = values.filter { $0.key.hasPrefix(name + "_count") && filter($0.key) }.values.reduce(0, +)
        return count > 0 ? sum / count * 1000 : 0
    }
    func metrics() async -> [String: Double] {
        guard let text = try? await runCommand(["curl", "-s", "http://127.0.0.1:\(metricsPort)/metrics"]) else { return [:] }
        var values: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let value = Double(parts[1]) { values[String(parts[0])] = value }
        }
        return values
    }
    func sum(_ prefix: String, where filter: (String) -> Bool = { _ in true }) async -> Double {
        await metrics().filter { $0.key.hasPrefix(prefix) && filter($0.key) }.values.reduce(0, +)
    }
    func waitReady() async throws -> Duration {
        while true {
            if let out = try? await runCommand(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(probePort)/readyz"]), out == "200" {
                return ContinuousClock.now - started
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }
    func stop() async {
        process.signal(SIGTERM)
        _ = await process.wait(timeout: .seconds(20))
        process.stop()
    }
}

/// Watches the namespace's workloads until `count` have a status for their generation. cwo writes a
/// workload's status only after its Deployment was applied, so that also means every Deployment exists
/// (checked once, after the clock stopped). A watch, not polling lists: the API server is shared with
/// the thing being measured, and the raw floor is measured without any polling either.
func convergenceStart(_ namespace: String) async throws -> String {
    let list: ObjectList<UntypedObject> = try await client.list(workloads, namespace: namespace, options: .init(limit: 1))
    return list.metadata.resourceVersion ?? ""
}

/// Returns when each workload converged, in seconds from the call, in order.
@discardableResult
func waitConverged(_ namespace: String, from resourceVersion: String, count: Int,
                   until converged: @escaping @Sendable (UntypedObject) -> Bool = { _ in true }) async throws -> [Double] {
    let start = ContinuousClock.now
    var times: [Double] = []
    var done = Set<String>()
    var version = resourceVersion
    while true {
        // A watch may end (server timeouts); resume from the last version seen.
        let stream: WatchStream<UntypedObject> = try await client.watch(workloads, namespace: namespace, options: .init(resourceVersion: version, timeoutSeconds: 300))
        for try await event in stream {
            switch event {
            case .bookmark(let next):
                version = next
            case .added(let object), .modified(let object), .deleted(let object):
                version = object.metadata.resourceVersion ?? version
                if object.raw[path: ["status", "observedGeneration"]]?.intValue == Int(object.metadata.generation ?? -1), converged(object),
                    done.insert(object.name).inserted {
                    times.append(seconds(ContinuousClock.now - start))
                }
            }
            if done.count >= count { return times }
        }
    }
}

func checkDeployments(_ namespace: String, count: Int) async throws {
    let deployments = try await listAllAgain(.deployments, namespace: namespace, options: .init(labelSelector: "app.kubernetes.io/managed-by=cwo"), as: UntypedObject.self)
    guard deployments.items.count == count else {
        throw TestClusterError(message: "\(namespace): \(deployments.items.count) Deployments for \(count) converged workloads")
    }
}

// MARK: 1. apply-to-Deployment latency

/// Time from a workload's create returning to its Deployment appearing in a watch. `applyItself`: the
/// benchmark applies cwo's Deployment body right after the create (the API server's own share of the
/// latency), instead of waiting for cwo. `delivery`: the time from the create returning to the workload's
/// ADDED event reaching a watch of the benchmark's own (what any controller waits before it can start:
/// the API server's watch delivery, not cwo's).
func latencySample(namespace: String, name: String, applyItself: Bool) async throws -> (ms: Double, delivery: Double?) {
    var body: JSONValue?
    if applyItself { body = try rawWrites(name: name, namespace: namespace).deployment }
    let list: ObjectList<UntypedObject> = try await client.list(.deployments, namespace: namespace, options: .init(limit: 1))
    // As protobuf, as a cluster's controller manager watches Deployments: the API server encodes each
    // Deployment event once per encoding, and cwo's watch is protobuf too.
    let stream: WatchStream<Deployment> = try await client.watch(.deployments, namespace: namespace,
        options: .init(fieldSelector: "metadata.name=\(name)", resourceVersion: list.metadata.resourceVersion, timeoutSeconds: 30))
    let workloadList: ObjectList<UntypedObject> = try await client.list(workloads, namespace: namespace, options: .init(limit: 1))
    let workloadStream: WatchStream<UntypedObject> = try await client.watch(workloads, namespace: namespace,
        options: .init(fieldSelector: "metadata.name=\(name)", resourceVersion: workloadList.metadata.resourceVersion, timeoutSeconds: 30))
    let created: UntypedObject = try await client.create(workloads, namespace: namespace, try UntypedObject(workload(name)))
    let start = ContinuousClock.now
    async let delivered: Double? = {
        for try await event in workloadStream { if case .added = event { return seconds(ContinuousClock.now - start) * 1000 } }
        return nil
    }()
    if var body {
        body["metadata"]?["ownerReferences"] = [["apiVersion": "cwo.dev/v1alpha1", "kind": "ConfidentialWorkload", "name": .string(name),
            "uid": .string(created.metadata.uid ?? ""), "controller": true, "blockOwnerDeletion": true]]
        let _: PartialObjectMetadata = try await client.apply(.deployments, namespace: namespace, name: name, body, fieldManager: "cwo", force: true)
    }
    for try await event in stream {
        if case .added(let deployment) = event,
            deployment.spec?[path: ["template", "spec", "runtimeClassName"]] == "kata-cc",
            deployment.spec?[path: ["template", "metadata", "annotations", "cwo.dev/policy-hash"]] != nil
        {
            let elapsed = seconds(ContinuousClock.now - start) * 1000
            return (elapsed, try await delivered)
        }
    }
    throw TestClusterError(message: "\(namespace)/\(name): no Deployment within the watch's 30 s")
}

do {
    let namespace = try await client.makeTestNamespace("bench-latency")
    let rawNamespace = try await client.makeTestNamespace("raw-latency")
    let cwo = try Operator(namespace: namespace, concurrency: 16)
    _ = try await cwo.waitReady()
    // A cwo sample, then a raw one (the same path without cwo: the benchmark applies the same Deployment
    // itself, in a namespace cwo does not watch), and so on: the shared cores' drift affects both alike.
    var samples: [Double] = []
    var raw: [Double] = []
    var delivery: [Double] = []
    for index in 0..<options.latencySamples {
        let sample = try await latencySample(namespace: namespace, name: "lat-\(index)", applyItself: false)
        samples.append(sample.ms)
        if let delivered = sample.delivery { delivery.append(delivered) }
        raw.append(try await latencySample(namespace: rawNamespace, name: "lat-\(index)", applyItself: true).ms)
    }
    report("latency.p50_ms", percentile(samples, 0.5), "1. apply -> Deployment latency p50 (\(samples.count) samples, alternating with raw ones)", unit: "ms")
    report("latency.p99_ms", percentile(samples, 0.99), "   apply -> Deployment latency p99", unit: "ms")
    // Where a sample's time goes, from cwo's own histograms (means over the samples): the wait in the
    // queue, the reconcile (desired state + the Deployment apply + the status write), the desired-state
    // build alone, and one Deployment apply as cwo's client saw it. The rest of a sample is the watch
    // delivering the workload to cwo and the Deployment to the benchmark.
    report("latency.breakdown.queue_ms", await cwo.meanMilliseconds("workqueue_queue_duration_seconds"), "   mean queue wait (workqueue_queue_duration_seconds)", unit: "ms")
    report("latency.breakdown.reconcile_ms", await cwo.meanMilliseconds("controller_runtime_reconcile_time_seconds"), "   mean reconcile, status write included", unit: "ms")
    report("latency.breakdown.build_ms", await cwo.meanMilliseconds("cwo_policy_generation_seconds"), "   mean desired-state build (policy included)", unit: "ms")
    report("latency.breakdown.patch_ms", await cwo.meanMilliseconds("rest_client_request_duration_seconds", where: { $0.contains("verb=\"PATCH\"") }),
           "   mean PATCH (apply) request as cwo's client sees it", unit: "ms")
    await cwo.stop()
    report("latency.raw_p50_ms", percentile(raw, 0.5), "   raw: create, then the same apply by the client itself, p50", unit: "ms")
    report("latency.raw_p99_ms", percentile(raw, 0.99), "   raw p99", unit: "ms")
    report("latency.added_p50_ms", percentile(samples, 0.5) - percentile(raw, 0.5), "   added by cwo at p50 (cwo - raw)", unit: "ms")
    report("latency.added_p99_ms", percentile(samples, 0.99) - percentile(raw, 0.99), "   added by cwo at p99 (cwo - raw)", unit: "ms")
    // Of what cwo adds, the part no controller can avoid: the workload reaching a watch at all.
    report("latency.watch_delivery_p50_ms", percentile(delivery, 0.5), "   create -> the workload's ADDED event at a watch of the bench, p50", unit: "ms")
    report("latency.watch_delivery_p99_ms", percentile(delivery, 0.99), "   same, p99", unit: "ms")
}

// MARK: 2-3. convergence throughput vs the raw floor; 4-5. memory and API efficiency

/// The raw floor of one convergence run, in seconds: a plain client doing the same writes per workload,
/// at the same concurrency: the very bodies cwo applies (the Deployment with its policy, the status),
/// built before the clock starts. (cwo records no event for a new workload: its status says everything.)
/// Its convergence is observed as cwo's is, through the bench's watch of the workloads: the API server
/// encodes every workload event for that watch (a custom resource's events are encoded once per
/// watcher), and the instrument's cost belongs on both sides of the ratio.
@MainActor func rawFloor(size: Int, concurrency: Int, run: Int) async throws -> Double {
    let rawNamespace = try await client.makeTestNamespace("raw-\(size)-\(concurrency)-\(run)")
    let bodies = try (0..<size).map { index in try rawWrites(name: "w-\(index)", namespace: rawNamespace) }
    try await settle()
    let from = try await convergenceStart(rawNamespace)
    let rawStart = ContinuousClock.now
    let rawServerBefore = serverCPU()
    let rawBenchBefore = cpuSeconds(getpid())
    async let observed = waitConverged(rawNamespace, from: from, count: size)
    try await concurrently(size, width: concurrency) { index in
        let name = "w-\(index)"
        let created: UntypedObject = try await client.create(workloads, namespace: rawNamespace, try UntypedObject(workload(name)))
        var deployment = bodies[index].deployment
        deployment["metadata"]?["ownerReferences"] = [["apiVersion": "cwo.dev/v1alpha1", "kind": "ConfidentialWorkload", "name": .string(name),
            "uid": .string(created.metadata.uid ?? ""), "controller": true, "blockOwnerDeletion": true]]
        // Read as cwo reads them: the Deployment's answer as its metadata alone, the status's not at all.
        let _: PartialObjectMetadata = try await client.apply(.deployments, namespace: rawNamespace, name: name, deployment, fieldManager: "cwo", force: true)
        let _: Discarded = try await client.apply(workloads, namespace: rawNamespace, name: name, subresource: "status", bodies[index].status, fieldManager: "cwo", force: true)
    }
    _ = try await observed
    let elapsed = seconds(ContinuousClock.now - rawStart)
    if run == 0 && concurrency == options.concurrencies.max() {
        report("cpu.\(size).raw_server_s", serverCPU() - rawServerBefore, "   CPU of kube-apiserver + etcd for the raw floor", unit: "s")
        report("cpu.\(size).raw_bench_s", cpuSeconds(getpid()) - rawBenchBefore, "   CPU of this benchmark for the raw floor (its writes)", unit: "s")
    }
    try await clear(rawNamespace)
    return elapsed
}

var idleMeasured = false
for size in options.sizes {
    for concurrency in options.concurrencies {
        let repeats = size == options.sizes.max() && concurrency == options.concurrencies.max() ? options.runs : 1
        var cwoTimes: [Double] = []
        var rawTimes: [Double] = []
        for run in 0..<repeats {
            let rawFirst = options.rawFloorFirst(inRun: run)
            if rawFirst { rawTimes.append(try await rawFloor(size: size, concurrency: concurrency, run: run)) }
            // cwo: create N workloads at once; time until all have a Deployment and a current status.
            let namespace = try await client.makeTestNamespace("bench-\(size)-\(concurrency)-\(run)")
            let cwo = try Operator(namespace: namespace, concurrency: concurrency)
            _ = try await cwo.waitReady()
            if !idleMeasured {
                try await Task.sleep(for: .seconds(2))
                report("memory.idle_mib", rssMiB(cwo.process.pid), "4. RSS of cwo run, idle", unit: "MiB")
                idleMeasured = true
            }
            try await settle()
            let from = try await convergenceStart(namespace)
            let start = ContinuousClock.now
            let cpuBefore = (cwo: cpuSeconds(cwo.process.pid), server: serverCPU(), bench: cpuSeconds(getpid()))
            let ioBefore = ioBytes(cwo.process.pid)
            let faultsBefore = majorFaults(cwo.process.pid)
            async let converged = waitConverged(namespace, from: from, count: size)
            var created: [Double] = []
            try await concurrently(size, width: 16) { index in
                let _: UntypedObject = try await client.create(workloads, namespace: namespace, try UntypedObject(workload("w-\(index)")))
            }
            created.append(seconds(ContinuousClock.now - start))
            let completions = try await converged
            cwoTimes.append(seconds(ContinuousClock.now - start))
            // CPU up to convergence: the check below lists every Deployment (~50 MB of JSON at 1 000), which
            // is the benchmark's cost, not cwo's.
            let cpuAfter = (cwo: cpuSeconds(cwo.process.pid), server: serverCPU(), bench: cpuSeconds(getpid()))
            let ioAfter = ioBytes(cwo.process.pid)
            let faults = majorFaults(cwo.process.pid) - faultsBefore
            if run == 0 && concurrency == options.concurrencies.max() {
                // The shape of the curve: a tail (a few slow workloads) or a rate (all of them late).
                report("convergence.\(size).created_s", created[0], "   all \(size) workloads created (by the bench, 16 at a time)", unit: "s")
                report("convergence.\(size).half_s", percentile(completions, 0.5), "   half of them converged", unit: "s")
                report("convergence.\(size).p90_s", percentile(completions, 0.9), "   90 % converged", unit: "s")
            }
            try await checkDeployments(namespace, count: size)
            if run == 0 && concurrency == options.concurrencies.max() {
                // Where the time goes: cwo's own CPU, and the API server's (+ etcd's) for the same work.
                report("cpu.\(size).cwo_s", cpuAfter.cwo - cpuBefore.cwo, "   CPU of cwo while converging \(size) (of \(ProcessInfo.processInfo.activeProcessorCount) cores)", unit: "s")
                report("cpu.\(size).server_s", cpuAfter.server - cpuBefore.server, "   CPU of kube-apiserver + etcd meanwhile", unit: "s")
                report("cpu.\(size).bench_s", cpuAfter.bench - cpuBefore.bench, "   CPU of this benchmark meanwhile (creating, watching for convergence)", unit: "s")
                report("io.\(size).cwo_read_kib_per_workload", (ioAfter.read - ioBefore.read) / 1024 / Double(size),
                       "   bytes cwo read while converging, per workload (its watches, the answers)", unit: "KiB")
                report("io.\(size).cwo_written_kib_per_workload", (ioAfter.written - ioBefore.written) / 1024 / Double(size),
                       "   bytes cwo wrote while converging, per workload (its requests)", unit: "KiB")
                report("cpu.\(size).cwo_major_faults", faults, "   page faults of cwo meanwhile that read its binary (code handed back while idle)", unit: "")
                report("memory.\(size)_peak_mib", rssMiB(cwo.process.pid, field: "VmHWM:"), "4. peak RSS of cwo run while converging \(size) workloads", unit: "MiB")
                // After the burst: cwo hands memory freed after it back every 15 s.
                try await Task.sleep(for: .seconds(20))
                report("memory.\(size)_after_burst_mib", rssMiB(cwo.process.pid), "4. RSS of cwo run 20 s after converging \(size) workloads", unit: "MiB")
                try await memoryBreakdown(namespace: namespace, count: size)
                let reconciles = await cwo.sum("controller_runtime_reconcile_total")
                for verb in ["GET", "PATCH", "POST", "PUT", "DELETE"] {
                    let count = await cwo.sum("rest_client_requests_total", where: { $0.contains("method=\"\(verb)\"") })
                    if count > 0 { report("api.\(size).\(verb.lowercased())_per_reconcile", count / max(reconciles, 1), "5. \(verb) requests per reconcile (\(size) workloads, \(Int(reconciles)) reconciles)", unit: "") }
                }
                let before = await cwo.sum("rest_client_requests_total", where: { !$0.contains("method=\"GET\"") })
                try await Task.sleep(for: .seconds(options.quietSeconds))
                let quiet = await cwo.sum("rest_client_requests_total", where: { !$0.contains("method=\"GET\"") }) - before
                report("api.\(size).writes_per_minute_converged", quiet * 60 / Double(options.quietSeconds), "5. writes per minute when converged (\(size) workloads, \(options.quietSeconds) s)", unit: "")
                // Settled: the quiet period gave cwo time to forget the desired states of workloads no
                // longer reconciled (30-60 s after their last reconcile) and to hand the memory back.
                report("memory.\(size)_mib", rssMiB(cwo.process.pid), "4. RSS of cwo run with \(size) workloads and their Deployments cached (settled, after the quiet period)", unit: "MiB")
                report("memory.\(size)_file_mib", rssMiB(cwo.process.pid, field: "RssFile:"), "   of which mapped from files (cwo's binary, the C libraries)", unit: "MiB")

                do {
                    // 6. Restart with everything present: readiness, then every workload reconciled, nothing rewritten.
                    await cwo.stop()
                    let restarted = try Operator(namespace: namespace, concurrency: concurrency)
                    let ready = try await restarted.waitReady()
                    report("startup.\(size).readyz_s", seconds(ready), "6. start -> /readyz with \(size) workloads", unit: "s")
                    while await restarted.sum("controller_runtime_reconcile_total") < Double(size) { try await Task.sleep(for: .milliseconds(20)) }
                    report("startup.\(size).all_reconciled_s", seconds(ContinuousClock.now - restarted.started), "6. start -> all \(size) reconciled", unit: "s")
                    let rewritten = await restarted.sum("rest_client_requests_total", where: { !$0.contains("method=\"GET\"") })
                    report("startup.\(size).writes", rewritten, "6. writes after a restart with nothing changed", unit: "")
                    await restarted.stop()
                }
            }
            await cwo.stop()
            try await clear(namespace)

            if !rawFirst { rawTimes.append(try await rawFloor(size: size, concurrency: concurrency, run: run)) }
        }
        let cwoMedian = percentile(cwoTimes, 0.5)
        let rawMedian = percentile(rawTimes, 0.5)
        report("convergence.\(size).c\(concurrency).cwo_s", cwoMedian, "2. convergence of \(size) at concurrency \(concurrency): cwo (median of \(repeats))", unit: "s")
        report("convergence.\(size).c\(concurrency).raw_s", rawMedian, "3.    raw floor, same writes, same concurrency", unit: "s")
        report("convergence.\(size).c\(concurrency).ratio", cwoMedian / max(rawMedian, 0.001), "      cwo / raw (of the medians)", unit: "x")
        // The spread: these shared cores move a run by tens of percent.
        let ratios = zip(cwoTimes, rawTimes).map { $0 / max($1, 0.001) }
        report("convergence.\(size).c\(concurrency).cwo_min_s", cwoTimes.min() ?? 0, "      cwo min of \(repeats)", unit: "s")
        report("convergence.\(size).c\(concurrency).cwo_max_s", cwoTimes.max() ?? 0, "      cwo max of \(repeats)", unit: "s")
        report("convergence.\(size).c\(concurrency).ratio_min", ratios.min() ?? 0, "      cwo / raw, lowest run", unit: "x")
        report("convergence.\(size).c\(concurrency).ratio_max", ratios.max() ?? 0, "      cwo / raw, highest run", unit: "x")
        // The figure the README reports: each run's two sides ran back to back, so its ratio is the least
        // moved by the hour's drift, which the ratio of the medians mixes in.
        report("convergence.\(size).c\(concurrency).ratio_median", median(ratios), "      cwo / raw, median of the runs' ratios", unit: "x")
        if repeats > 1 {
            for (run, ratio) in ratios.enumerated() {
                let first = options.rawFloorFirst(inRun: run) ? "raw floor" : "cwo"
                report("convergence.\(size).c\(concurrency).run\(run + 1).ratio", ratio,
                       "      run \(run + 1) (\(first) first): " + String(format: "%.1f s / %.1f s", cwoTimes[run], rawTimes[run]), unit: "x")
            }
        }
    }
}

// MARK: 7. image resolution: N workloads over a few images, from a real registry

/// N workloads over `images` images (tags) of a real registry that needs a login (their pull secret
/// gives it), converged to Deployments that run them by digest; then the same N with resolution off.
@MainActor func imageFigure(workloads count: Int) async throws {
    let registry = try await TestRegistry.start()
    defer { Task { await registry.stop() } }
    for index in 0..<options.images {
        _ = try await registry.pushImage("bench/app-\(index)", tag: "v1", config: ["Entrypoint": ["/app"], "Cmd": ["--serve"], "Env": ["PATH=/usr/bin:/bin", "MODE=bench"], "User": "1000:1000"])
    }
    let references = (0..<options.images).map { "\(registry.host)/bench/app-\($0):v1" }
    // The attestation container cwo adds is resolved and locked too: from the same registry here.
    _ = try await registry.pushImage("aci/skr", tag: "2.7", config: ["Entrypoint": ["/skr.sh"]])
    let attestation = "\(registry.host)/aci/skr:2.7"
    let auth = Data("\(registry.username):\(registry.password)".utf8).base64EncodedString()
    let config = Data(#"{"auths":{"\#(registry.host)":{"auth":"\#(auth)"}}}"#.utf8).base64EncodedString()
    @Sendable func imageWorkload(_ index: Int) -> JSONValue {
        ["apiVersion": "cwo.dev/v1alpha1", "kind": "ConfidentialWorkload", "metadata": ["name": .string("w-\(index)")],
         "spec": ["replicas": 1, "attestation": ["image": .string(attestation)],
                  "template": ["spec": ["imagePullSecrets": [["name": "regcred"]], "containers": [["name": "app", "image": .string(references[index % references.count]),
            "resources": ["limits": ["memory": "256Mi"]]]]]]]]
    }
    var times: [Bool: [Double]] = [:]
    // Alternating (on, off, off, on, on, off, ...): the API server's store grows run by run, and the
    // two modes must share that drift.
    let order = (0..<max(options.runs, 1)).flatMap { $0 % 2 == 0 ? [true, false] : [false, true] }
    for (round, resolving) in order.enumerated() {
        let namespace = try await client.makeTestNamespace(resolving ? "bench-images-\(round)" : "bench-images-off-\(round)")
        let _: UntypedObject = try await client.create(.secrets, namespace: namespace, try UntypedObject(
            ["apiVersion": "v1", "kind": "Secret", "metadata": ["name": "regcred"], "type": "kubernetes.io/dockerconfigjson", "data": [".dockerconfigjson": .string(config)]]))
        let cwo = try Operator(namespace: namespace, concurrency: 16, extra: resolving ? ["--registry-ca-file", registry.caFile] : ["--no-resolve-images"])
        _ = try await cwo.waitReady()
        let from = try await convergenceStart(namespace)
        let start = ContinuousClock.now
        // Resolving: converged means the Deployment runs the images by digest (ImagesResolved True).
        async let converged = waitConverged(namespace, from: from, count: count) { object in
            !resolving || (object.raw[path: ["status", "conditions"]]?.arrayValue ?? []).contains { $0["type"] == "ImagesResolved" && $0["status"] == "True" }
        }
        try await concurrently(count, width: 16) { index in
            let _: UntypedObject = try await client.create(workloads, namespace: namespace, try UntypedObject(imageWorkload(index)))
        }
        _ = try await converged
        times[resolving, default: []].append(seconds(ContinuousClock.now - start))
        if resolving && round == 0 {
            let deployments: ObjectList<UntypedObject> = try await client.listAll(.deployments, namespace: namespace, options: .init(labelSelector: "app.kubernetes.io/managed-by=cwo"))
            let locked = deployments.items.filter { ($0.raw[path: ["spec", "template", "spec", "containers"]]?.arrayValue ?? []).contains { $0["image"]?.stringValue?.contains("@sha256:") == true } }
            guard locked.count == count else { throw TestClusterError(message: "\(locked.count) of \(count) Deployments run their image by digest") }
            report("images.\(count).registry_requests", await cwo.sum("cwo_registry_requests_total"), "7. registry requests for \(count) workloads over \(options.images) images (+ the attestation image)", unit: "")
            report("images.\(count).lookups", await cwo.sum("cwo_image_lookups_total"), "   image lookups (one per image and credentials)", unit: "")
            report("images.\(count).cache_bytes", await cwo.sum("cwo_image_facts_cache_bytes"), "   bytes of facts in the cache (strings)", unit: "")
            try await Task.sleep(for: .seconds(20))
            report("images.\(count).rss_mib", rssMiB(cwo.process.pid), "   RSS of cwo run with them, settled", unit: "MiB")
        }
        await cwo.stop()
    }
    await registry.stop()
    let on = times[true] ?? [], off = times[false] ?? []
    report("images.\(count).converge_s", percentile(on, 0.5), "7. convergence of \(count) workloads, resolving their images (by digest), median of \(on.count)", unit: "s")
    report("images.\(count).converge_min_s", on.min() ?? 0, "      min", unit: "s")
    report("images.\(count).converge_max_s", on.max() ?? 0, "      max", unit: "s")
    report("images.\(count).converge_off_s", percentile(off, 0.5), "   the same workloads, --no-resolve-images, median of \(off.count)", unit: "s")
    report("images.\(count).converge_off_min_s", off.min() ?? 0, "      min", unit: "s")
    report("images.\(count).converge_off_max_s", off.max() ?? 0, "      max", unit: "s")
    report("images.\(count).ratio", percentile(on, 0.5) / max(percentile(off, 0.5), 0.001), "   with / without resolution (medians)", unit: "x")
}

// MARK: 8. ReplicaSets read as protobuf or as JSON

/// The same ReplicaSet reading as JSON (what `ReplicaSetSummary` read before it was `ProtobufDecodable`).
struct ReplicaSetFromJSON: Decodable, Sendable {
    let summary: ReplicaSetSummary
    init(from decoder: any Decoder) throws { summary = try ReplicaSetSummary(from: decoder) }
}

/// `count` ReplicaSets with cwo's pod template (its ~50 KB policy annotation), listed whole as cwo's
/// reflector lists them, alternately as protobuf and as JSON: the CPU of this process (reading) and of
/// the API server (encoding) per 1 000 objects. (The bench's control plane runs no Deployment controller,
/// so the convergence figures above have no ReplicaSets in them.)
@MainActor func replicaSetFigure(count: Int) async throws {
    let namespace = try await client.makeTestNamespace("replicasets")
    let template = try rawWrites(name: "rs", namespace: namespace).deployment[path: ["spec", "template"]] ?? [:]
    try await concurrently(count, width: 16) { index in
        let body: JSONValue = [
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": ["name": .string("rs-\(index)")],
            "spec": ["replicas": 0, "selector": ["matchLabels": template[path: ["metadata", "labels"]] ?? [:]], "template": template],
        ]
        let _: Discarded = try await client.create(.replicaSets, namespace: namespace, body, as: Discarded.self)
    }
    var cost: [Bool: (client: [Double], server: [Double])] = [:]
    for round in 0..<10 {
        let protobuf = round % 2 == 0
        let (clientBefore, serverBefore) = (cpuSeconds(getpid()), serverCPU())
        let read = protobuf
            ? try await client.listAll(.replicaSets, namespace: namespace, as: ReplicaSetSummary.self).items.count
            : try await client.listAll(.replicaSets, namespace: namespace, as: ReplicaSetFromJSON.self).items.count
        guard read == count else { throw TestClusterError(message: "listed \(read) of \(count) ReplicaSets") }
        let scale = 1000 / Double(count)
        cost[protobuf, default: ([], [])].client.append((cpuSeconds(getpid()) - clientBefore) * scale)
        cost[protobuf, default: ([], [])].server.append((serverCPU() - serverBefore) * scale)
    }
    for (protobuf, name) in [(false, "json"), (true, "protobuf")] {
        let figures = cost[protobuf] ?? ([], [])
        report("replicasets.\(name).client_s_per_1000", percentile(figures.client, 0.5), "8. reading 1 000 ReplicaSets as \(name): CPU of the reader (median of 5)", unit: "s")
        report("replicasets.\(name).server_s_per_1000", percentile(figures.server, 0.5), "   CPU of kube-apiserver + etcd serving them", unit: "s")
    }
}

if options.replicaSets > 0 {
    try await replicaSetFigure(count: options.replicaSets)
}

let imageCount = options.imageWorkloads ?? min(options.sizes.max() ?? 0, 1000)
if imageCount > 0 {
    try await imageFigure(workloads: imageCount)
}

results["machine"] = .string("\(ProcessInfo.processInfo.processorCount) cores, \(ProcessInfo.processInfo.physicalMemory / 1_073_741_824) GiB")
try JSONCoding.encoder.encode(JSONValue.object(results)).write(to: URL(fileURLWithPath: options.output))
print("\nwrote \(options.output)")
try? await client.shutdown()
await cluster.stop()
