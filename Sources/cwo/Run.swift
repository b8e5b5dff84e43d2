import ArgumentParser
import ConfidentialWorkload
import Foundation
import KubernetesClient
import Logging
import ServiceLifecycle

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

    func validate() throws {
        guard concurrency >= 1 else { throw ValidationError("--concurrency must be at least 1") }
    }

    func run() async throws {
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
        logger.info("starting", metadata: ["config": "\(configuration.summary)", "namespace": "\(namespace ?? "<all>")", "concurrency": "\(concurrency)"])
        let client = try KubeClient(configuration: configuration, logger: Logger(label: "cwo.kube"))

        let workloadOperator = WorkloadOperator(client: client, options: .init(namespace: namespace, concurrency: concurrency), logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: OperatorService(workloadOperator: workloadOperator), successTerminationBehavior: .gracefullyShutdownGroup)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        do {
            try await group.run()
        } catch {
            logger.error("stopped with an error", metadata: ["error": "\(error)"])
        }
        try? await client.shutdown()
        logger.info("stopped")
    }
}

/// The controller as a swift-service-lifecycle service: graceful shutdown cancels it, and it drains.
struct OperatorService: Service {
    let workloadOperator: WorkloadOperator

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await workloadOperator.run()
        }
    }
}

enum LogFormat: String, ExpressibleByArgument, Sendable {
    case text, json
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
