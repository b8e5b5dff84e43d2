import ArgumentParser
import AzureKeyVault
import ConfidentialWorkload
import ControllerRuntime
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import KubernetesClient
import Logging
import Metrics
import OCIRegistry
import Prometheus
import ServiceLifecycle
import TrusteeKBS

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the controller against a cluster.")

    @Option(help: "Path to a kubeconfig. Default: $KUBECONFIG, then the in-cluster service account, then ~/.kube/config.")
    var kubeconfig: String?

    @Option(help: "Kubeconfig context to use (default: its current-context).")
    var context: String?

    @Option(help: "Watch only this namespace (default: all namespaces).")
    var namespace: String?

    @Option(help: "Workloads reconciled in parallel.")
    var concurrency = 4

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    @Option(help: "Log format: text or json.")
    var logFormat: LogFormat = .text

    @Option(help: "Client-side limit of API requests per second (default: none; the server's priority and fairness applies).")
    var kubeApiQps: Double?

    @Option(help: "Burst above --kube-api-qps.")
    var kubeApiBurst = 10

    @Flag(help: "Speak HTTP/2 to the API server when it offers it (default: HTTP/1.1, a connection per watch; less CPU for cwo).")
    var kubeApiHttp2 = false

    @Flag(help: "Elect a leader on a coordination.k8s.io Lease; only the leader reconciles.")
    var leaderElect = false

    @Option(help: "Namespace of the leader Lease (default: the pod's namespace).")
    var leaderElectionNamespace: String?

    @Option(help: "Name of the leader Lease.")
    var leaderElectionId = "cwo-leader"

    @Option(help: "Seconds a non-leader waits before taking an unrenewed lease.")
    var leaseDuration = 15.0

    @Option(help: "Seconds the leader keeps trying to renew before it gives up leading.")
    var renewDeadline = 10.0

    @Option(help: "Seconds between lease attempts and renewals.")
    var retryPeriod = 2.0

    @Option(help: "Address of the Prometheus /metrics endpoint (\"0\" disables it).")
    var metricsBindAddress = ":8080"

    @Option(help: "Address of the /healthz and /readyz endpoints (\"0\" disables them).")
    var healthProbeBindAddress = ":8081"

    @Option(help: "PEM file of extra CAs to trust for Key Vault and the Azure identity endpoint (a TLS-inspecting proxy, a private endpoint).")
    var azureCaFile: String?

    @Option(help: "Seconds a deleted workload with releasePolicy Managed waits for its hashes to leave the key's release policy before cwo gives up and lets it go.")
    var keyReleaseCleanupTimeout = 300.0

    @Option(help: "Seconds between checks of a converged workload's Key Vault release policy (repairs outside edits).")
    var keyReleaseResync = 600.0

    @Option(help: "URL of the Trustee KBS whose resource policy cwo manages for CoCo workloads naming it (with --kbs-admin-key).")
    var kbsUrl: String?

    @Option(help: "File with the KBS admin's Ed25519 private key (PKCS#8 PEM), which signs cwo's admin tokens.")
    var kbsAdminKey: String?

    @Option(help: "PEM file of the CA that signed the KBS's certificate (besides the system's).")
    var kbsCaFile: String?

    @Option(help: "Seconds to finish in-flight reconciles after SIGTERM.")
    var shutdownTimeout = 30.0

    @Flag(inversion: .prefixedNo,
          help: "Resolve the template's images in their registries (with the pods' image pull secrets, where cwo may read them): lock them to digests and pin their config in the policy.")
    var resolveImages = true

    @Flag(inversion: .prefixedNo,
          help: "For AKS workloads (kata-cc), download each image layer once and compute its dm-verity root hash as the node does, so that the layers the node pulls are allowed and pinned in the policy (the default; CoCo workloads pull in the guest and need no layers).")
    var hashImageLayers = true

    @Flag(inversion: .prefixedNo,
          help: "Once cwo has been quiet for 30 s, hand back the pages of its own executable it is not running (read back from the file on their next use).")
    var releaseIdleCode = true

    @Flag(inversion: .prefixedNo,
          help: "Run cwo's tasks on the threads that do its I/O (no hop between threads per request and watch event; less CPU). Off: Swift's own thread pool.")
    var tasksOnEventLoops = true

    @Option(help: "PEM file of extra CAs to trust for image registries (a private registry's CA).")
    var registryCaFile: String?

    @Option(help: "Seconds an image tag's digest is used before the registry is asked again.")
    var imageResync = 600.0

    func validate() throws {
        guard concurrency >= 1 else { throw ValidationError("--concurrency must be at least 1") }
        guard imageResync >= 1 else { throw ValidationError("--image-resync must be at least 1 second") }
        guard keyReleaseCleanupTimeout >= 0, keyReleaseResync >= 1 else {
            throw ValidationError("--key-release-cleanup-timeout must be >= 0 and --key-release-resync >= 1")
        }
        if let azureCaFile, !FileManager.default.isReadableFile(atPath: azureCaFile) {
            throw ValidationError("--azure-ca-file \(azureCaFile) is not a readable file")
        }
        if (kbsUrl == nil) != (kbsAdminKey == nil) {
            throw ValidationError("--kbs-url and --kbs-admin-key go together: cwo signs its KBS admin requests with that key")
        }
        for (flag, file) in [("--kbs-admin-key", kbsAdminKey), ("--kbs-ca-file", kbsCaFile)] {
            if let file, !FileManager.default.isReadableFile(atPath: file) { throw ValidationError("\(flag) \(file) is not a readable file") }
        }
        guard leaseDuration > renewDeadline, renewDeadline > retryPeriod, retryPeriod > 0 else {
            throw ValidationError("need --lease-duration > --renew-deadline > --retry-period > 0")
        }
    }

    func run() async throws {
        // First, before any task of cwo's own starts.
        let onEventLoops = tasksOnEventLoops ? await TasksOnEventLoops.install() : false
        // With NIO's threads and the concurrency pool, an arena per thread multiplies cwo's footprint; two
        // suffice. (One: settled RSS at 10 000 workloads 91.7 and 99.6 MiB in two runs against 99.6 with
        // two, for 30 s of CPU converging against 27.) Not M_MMAP_THRESHOLD: mapping every block of 32 KiB+
        // on its own (each reconcile makes several: the policy, its base64, the bodies) spared ~1 MiB at
        // 1000 workloads for 34 % more CPU. glibc's own MALLOC_ARENA_MAX, when set, is the operator's choice.
        if ProcessInfo.processInfo.environment["MALLOC_ARENA_MAX"] == nil { IdleMemory.limitArenas(2) }
        let level = logLevel
        let format = logFormat
        LoggingSystem.bootstrap { label in
            var handler = LogHandlers.make(label: label, format: format)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "cwo")
        var configuration: ClientConfiguration
        do {
            configuration = try ClientConfiguration.load(kubeconfig: kubeconfig, context: context)
        } catch {
            logger.critical("cannot configure the Kubernetes client", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
        configuration.qps = kubeApiQps
        configuration.burst = kubeApiBurst
        configuration.http2 = kubeApiHttp2
        logger.info("starting", metadata: ["config": "\(configuration.summary)", "namespace": "\(namespace ?? "<all>")", "concurrency": "\(concurrency)",
            "tasks": "\(onEventLoops ? "event loops" : "Swift's pool")"])

        // Metrics go through swift-metrics; this executable chooses Prometheus, with controller-runtime's buckets.
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultValueHistogramBuckets = OperatorMetrics.queueBuckets
        factory.valueHistogramBuckets = OperatorMetrics.histogramBuckets
        MetricsSystem.bootstrap(factory)
        let client = try KubeClient(configuration: configuration, logger: Logger(label: "cwo.kube")) { method, code, host, duration in
            OperatorMetrics.request(method: method, code: code, host: host, duration: duration)
        }
        let identity = "\(ProcessInfo.processInfo.hostName)_\(UUID().uuidString.prefix(8).lowercased())"
        let observer = OperatorMetrics.controllerObserver(WorkloadOperator.controllerName, concurrency: concurrency)
        let events = EventRecorder(client: client, controller: "cwo", instance: identity, logger: logger)
        let keyRelease = try makeKeyRelease(logger: logger)
        let kbs = try makeKBSBroker(logger: logger)
        let workloadOperator = WorkloadOperator(
            client: client, options: .init(namespace: namespace, concurrency: concurrency), logger: logger, queueObserver: observer,
            observer: observer, events: events, keyRelease: keyRelease, kbs: kbs, images: try makeImageResolver())

        var elector: LeaderElector?
        if leaderElect {
            var election = LeaderElector.Configuration(
                namespace: leaderElectionNamespace ?? ProcessInfo.processInfo.environment["POD_NAMESPACE"] ?? configuration.namespace,
                name: leaderElectionId, identity: identity)
            election.leaseDuration = .seconds(leaseDuration)
            election.renewDeadline = .seconds(renewDeadline)
            election.retryPeriod = .seconds(retryPeriod)
            OperatorMetrics.leader(leaderElectionId, isLeader: false)
            let name = leaderElectionId
            elector = LeaderElector(client: client, configuration: election, logger: logger) { OperatorMetrics.leader(name, isLeader: $0) }
        }

        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: OperatorService(workloadOperator: workloadOperator, elector: elector), successTerminationBehavior: .gracefullyShutdownGroup),
            // Returns at once where there is no glibc: that must not end the operator.
            .init(service: IdleMemoryService(releaseCode: releaseIdleCode, logger: logger), successTerminationBehavior: .ignore),
        ]
        if let endpoints = HTTPEndpoints(address: metricsBindAddress, routes: [
            "/metrics": {
                WorkloadMetrics.workloads(ready: workloadOperator.workloadsByReady())
                return (.ok, "text/plain; version=0.0.4; charset=utf-8", registry.emitToString())
            },
        ], logger: logger) {
            services.append(.init(service: EndpointsService(endpoints: endpoints)))
        }
        let leaderElecting = leaderElect
        let candidate = elector
        if let probes = HTTPEndpoints(address: healthProbeBindAddress, routes: [
            // Alive while the event loop answers; a slow API server does not make cwo unhealthy.
            "/healthz": { (.ok, "text/plain", "ok\n") },
            // Ready once the caches are synced; a standby replica waiting for the lease is ready to take over.
            "/readyz": {
                if workloadOperator.hasSynced { return (.ok, "text/plain", "ok\n") }
                if leaderElecting, candidate?.isLeader == false { return (.ok, "text/plain", "standby\n") }
                return (.serviceUnavailable, "text/plain", "caches not synced\n")
            },
        ], logger: logger) {
            services.append(.init(service: EndpointsService(endpoints: probes)))
        }
        var groupConfiguration = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        groupConfiguration.maximumGracefulShutdownDuration = .seconds(shutdownTimeout)
        let group = ServiceGroup(configuration: groupConfiguration)
        var failed = false
        do {
            try await group.run()
        } catch {
            logger.error("stopped with an error", metadata: ["error": "\(error)"])
            failed = true
        }
        await events.shutdown()
        try? await client.shutdown()
        try? await keyRelease.shutdown()
        try? await kbs?.shutdown()
        logger.info("stopped")
        if failed { throw ExitCode(1) }
    }
}

extension Run {
    /// Key Vault access through cwo's own workload identity, when its pod has one. Without it, workloads
    /// with `releasePolicy: Managed` say so in KeyReleaseBound; everything else works.
    func makeKeyRelease(logger: Logger) throws -> KeyReleaseManager {
        var options = KeyReleaseManager.Options()
        options.cleanupTimeout = .milliseconds(Int64(keyReleaseCleanupTimeout * 1000))
        options.resync = .milliseconds(Int64(keyReleaseResync * 1000))
        switch WorkloadIdentity.fromEnvironment() {
        case .success(let identity):
            var azure = AzureOptions(additionalCAFile: azureCaFile)
            azure.observer = { method, code, _ in WorkloadMetrics.keyVaultRequest(method: method, code: code) }
            logger.info("Key Vault access", metadata: ["clientID": "\(identity.clientID)", "authority": "\(identity.authorityHost)"])
            return KeyReleaseManager(client: try KeyVaultClient(identity: identity, options: azure, logger: Logger(label: "cwo.azure")), options: options)
        case .failure(let missing):
            logger.info("no Key Vault access", metadata: ["reason": "\(missing)"])
            return KeyReleaseManager(unavailable: missing.description, options: options)
        }
    }
}

extension Run {
    /// The KBS cwo manages, when it was given one and its admin key.
    func makeImageResolver() throws -> ImageResolver? {
        guard resolveImages else { return nil }
        var options = RegistryClient.Options(caFile: registryCaFile)
        options.observer = { WorkloadMetrics.registryRequest(code: $0) }
        let registry = try RegistryClient(options: options, logger: Logger(label: "cwo.registry"))
        return ImageResolver(
            lookup: { request throws(RegistryError) in
                try await registry.resolve(request.reference, credentials: request.credentials, tarfsLayers: request.tarfsLayers)
            },
            ttl: .seconds(imageResync), hashLayersForHostPull: hashImageLayers)
    }

    func makeKBSBroker(logger: Logger) throws -> KBSBroker? {
        guard let kbsUrl, let kbsAdminKey else { return nil }
        let pem = String(decoding: FileManager.default.contents(atPath: kbsAdminKey) ?? Data(), as: UTF8.self)
        do {
            let key = try KBSAdminClient.adminKey(pem: pem)
            logger.info("KBS resource policy managed", metadata: ["kbs": "\(kbsUrl)"])
            return KBSBroker(client: try KBSAdminClient(options: .init(url: kbsUrl, caFile: kbsCaFile), adminKey: key, logger: Logger(label: "cwo.kbs")))
        } catch let error as KBSError {
            logger.critical("cannot use the KBS admin key", metadata: ["file": "\(kbsAdminKey)", "error": "\(error.message)"])
            throw ExitCode(1)
        }
    }
}

/// The controller as a swift-service-lifecycle service: graceful shutdown cancels it, in-flight
/// reconciles finish, and the lease (if any) is released.
struct OperatorService: Service {
    let workloadOperator: WorkloadOperator
    let elector: LeaderElector?

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            if let elector {
                try await elector.run { await workloadOperator.run() }
            } else {
                await workloadOperator.run()
            }
        }
    }
}

struct EndpointsService: Service {
    let endpoints: HTTPEndpoints

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            try await endpoints.run()
        }
    }
}

enum LogFormat: String, ExpressibleByArgument, Sendable {
    case text, json
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
