import Foundation
#if canImport(Glibc)
import Glibc
#endif
import KubernetesClient

/// A real control plane (etcd + kube-apiserver + kube-controller-manager) started by `scripts/control-plane`.
///
/// `TestCluster.shared()` is one cluster for the whole test process: the one named by `CWO_TEST_CLUSTER`
/// (a directory made by `scripts/control-plane up`), or one started on first use and stopped when the
/// test process exits, however it exits. Tests isolate themselves in namespaces of their own.
/// `TestCluster.start()` gives a dedicated cluster, for tests that kill and restart the apiserver.
public final class TestCluster: Sendable {
    public let directory: String
    public let owned: Bool

    public var adminKubeconfig: String { directory + "/admin.kubeconfig" }
    /// A user with no RBAC grants at all (for 403 tests and least-privilege runs).
    public var userKubeconfig: String { directory + "/user.kubeconfig" }

    init(directory: String, owned: Bool) {
        self.directory = directory
        self.owned = owned
    }

    public static let script: String = {
        // Tests/TestSupport/TestCluster.swift -> package root.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent("scripts/control-plane").path
    }()

    private static let sharedCluster = SharedCluster()

    public static func shared() async throws -> TestCluster {
        try await sharedCluster.get()
    }

    /// Starts a dedicated cluster; it is stopped by `stop()` or when the test process exits.
    public static func start(name: String = "dedicated") async throws -> TestCluster {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cwo-test-\(name)-\(UUID().uuidString.prefix(8))").path
        try await run(["up", directory])
        return TestCluster(directory: directory, owned: true)
    }

    public func stop() async {
        try? await Self.run(["down", directory])
    }

    public func killAPIServer() async throws { try await Self.run(["stop-apiserver", directory]) }
    public func startAPIServer() async throws { try await Self.run(["start-apiserver", directory]) }

    public func adminClient(_ configure: (inout ClientConfiguration) -> Void = { _ in }) throws -> KubeClient {
        var configuration = try ClientConfiguration.load(kubeconfig: adminKubeconfig)
        // Not "cwo": the server names the field manager of a plain create or update after the user agent.
        configuration.userAgent = "cwo-tests"
        configure(&configuration)
        return try KubeClient(configuration: configuration)
    }

    public func userClient() throws -> KubeClient {
        try KubeClient(configuration: try ClientConfiguration.load(kubeconfig: userKubeconfig))
    }

    /// Runs the control-plane script; failure throws with the tail of its stderr.
    static func run(_ arguments: [String]) async throws {
        try await onThread { try runBlocking(arguments) }
    }

    static func runBlocking(_ arguments: [String]) throws {
        var environment = ProcessInfo.processInfo.environment
        environment["CWO_OWNER_PID"] = String(getpid())
        let (status, output) = try spawn(["/bin/bash", script] + arguments, environment: environment)
        guard status == 0 else {
            throw TestClusterError(message: "scripts/control-plane \(arguments.first ?? "") failed (\(status)):\n\(output.suffix(3000))")
        }
    }
}

public struct TestClusterError: Error, CustomStringConvertible {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

private actor SharedCluster {
    private var task: Task<TestCluster, any Error>?

    func get() async throws -> TestCluster {
        if let task { return try await task.value }
        let task = Task.detached { () throws -> TestCluster in
            if let directory = ProcessInfo.processInfo.environment["CWO_TEST_CLUSTER"], !directory.isEmpty {
                guard FileManager.default.fileExists(atPath: directory + "/admin.kubeconfig") else {
                    throw TestClusterError(message: "CWO_TEST_CLUSTER=\(directory) has no admin.kubeconfig; start it with scripts/control-plane up")
                }
                return TestCluster(directory: directory, owned: false)
            }
            let cluster = try await TestCluster.start(name: "shared")
            // Installed up front so the garbage collector's 30 s discovery sees the kind early.
            let client = try cluster.adminClient()
            try await cluster.installCRDs(client)
            try await cluster.waitForDeploymentController(client)
            try? await client.shutdown()
            return cluster
        }
        self.task = task
        return try await task.value
    }
}

extension KubeClient {
    /// Creates a namespace with a unique name for one test.
    public func makeTestNamespace(_ prefix: String) async throws -> String {
        let name = "\(prefix.lowercased().prefix(40))-\(UUID().uuidString.prefix(8).lowercased())"
        let _: UntypedObject = try await create(.namespaces, try UntypedObject(["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(name)]]))
        return name
    }

    /// Watches `resource` in `namespace` from `version`, again and again, until the API server ends the
    /// watch with 410 Gone (etcd's compaction, every 10 s in the test cluster, has passed the version).
    public func goneError<T: Decodable & Sendable>(_ resource: Resource, namespace: String, from version: String, as type: T.Type) async throws -> KubeError {
        try await eventually(timeout: .seconds(60), interval: .seconds(1), "a 410 for a compacted resourceVersion") { () -> KubeError? in
            do {
                let stream: WatchStream<T> = try await self.watch(resource, namespace: namespace, options: .init(resourceVersion: version, timeoutSeconds: 3))
                for try await _ in stream {}
                return nil
            } catch let error as KubeError where error.reason == .gone {
                return error
            }
        }
    }
}

/// Polls `condition` until it returns a value or `timeout` passes; the last error or a timeout message otherwise.
/// The timeout bounds a wait, it is no timing figure: generous, since the CI shares two cores among
/// several control planes.
public func eventually<T: Sendable>(
    timeout: Duration = .seconds(30), interval: Duration = .milliseconds(50), _ what: String = "condition",
    _ condition: @Sendable () async throws -> T?
) async throws -> T {
    let deadline = ContinuousClock.now + timeout
    var lastError: (any Error)?
    while ContinuousClock.now < deadline {
        do {
            if let value = try await condition() { return value }
        } catch {
            lastError = error
        }
        try await Task.sleep(for: interval)
    }
    throw TestClusterError(message: "timed out after \(timeout) waiting for \(what)" + (lastError.map { ": last error \($0)" } ?? ""))
}

extension TestCluster {
    public static var packageRoot: String {
        URL(fileURLWithPath: script).deletingLastPathComponent().deletingLastPathComponent().path
    }

    /// Applies every CRD in `crds/` and waits until the server serves them.
    /// Waits until the Deployment controller handles a Deployment: its informers sync after the control
    /// plane is up (seconds on two busy cores), and a test's first Deployment would wait for them inside
    /// that test's time limit. Call it after `installCRDs`: the API server's owner-reference admission
    /// maps kinds from its discovery as it stood at the first object it checks (refreshed every 30 s),
    /// and the probe's ReplicaSet is that object.
    public func waitForDeploymentController(_ client: KubeClient) async throws {
        let name = "controller-probe"
        let labels: JSONValue = ["app": .string(name)]
        let probe: JSONValue = [
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": ["name": .string(name)],
            "spec": ["replicas": 0, "selector": ["matchLabels": labels],
                     "template": ["metadata": ["labels": labels], "spec": ["containers": [["name": "probe", "image": "probe"]]]]],
        ]
        let _: UntypedObject = try await client.create(.deployments, namespace: "kube-system", try UntypedObject(probe))
        _ = try await eventually(timeout: .seconds(120), interval: .milliseconds(100), "the Deployment controller to handle a Deployment") { () -> Bool? in
            let live: UntypedObject = try await client.get(.deployments, namespace: "kube-system", name: name)
            return live.raw[path: ["status", "observedGeneration"]] == 1 ? true : nil
        }
        _ = try? await client.delete(.deployments, namespace: "kube-system", name: name)
    }

    public func installCRDs(_ client: KubeClient) async throws {
        let folder = Self.packageRoot + "/crds"
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".yaml") }.sorted()
        for file in files {
            let text = try String(contentsOfFile: folder + "/" + file, encoding: .utf8)
            for document in try YAMLDocuments.parse(text) {
                let name = document[path: ["metadata", "name"]]?.stringValue ?? ""
                let _: UntypedObject = try await client.apply(.customResourceDefinitions, name: name, document, fieldManager: "cwo-tests", force: true)
                _ = try await eventually(timeout: .seconds(20), "CRD \(name) established") { () -> Bool? in
                    let crd: UntypedObject = try await client.get(.customResourceDefinitions, name: name)
                    let established = crd.raw[path: ["status", "conditions"]]?.arrayValue?.contains {
                        $0["type"] == "Established" && $0["status"] == "True"
                    } ?? false
                    return established ? true : nil
                }
            }
        }
    }
}

/// Runs blocking work (a child process, a pipe read) on a thread of its own.
///
/// Never block a Swift concurrency thread on a child process: on Linux the cooperative pool has one
/// thread per core, and Foundation reaps children on the same dispatch threads, so two blocked tests
/// on a 2-core machine deadlock the whole test run.
public func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.start()
    }
}

/// Runs a command to completion and returns its combined output; throws with the output on failure.
public func runCommand(_ arguments: [String], environment: [String: String] = ProcessInfo.processInfo.environment) async throws -> String {
    try await onThread {
        let (status, output) = try spawn(["/usr/bin/env"] + arguments, environment: environment)
        guard status == 0 else {
            throw TestClusterError(message: "\(arguments.joined(separator: " ")) exited \(status): \(output)")
        }
        return output
    }
}

/// posix_spawn + waitpid, output through a file. Foundation's `Process` can miss the exit of a child
/// that started daemons of its own, and hang in `waitUntilExit`; this cannot.
func spawn(_ arguments: [String], environment: [String: String]) throws -> (status: Int32, output: String) {
    let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("cwo-spawn-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: outputPath) }
    let pid = try startProcess(arguments, environment: environment, outputPath: outputPath)
    var status: Int32 = 0
    while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
    return (exitCode(status), output)
}

/// Starts a program with stdin from /dev/null and stdout and stderr into `outputPath`.
func startProcess(_ arguments: [String], environment: [String: String], outputPath: String) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    let argv = arguments.map { strdup($0) } + [nil]
    let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
        argv.forEach { free($0) }
        envp.forEach { free($0) }
    }
    var pid: pid_t = 0
    let result = posix_spawn(&pid, arguments[0], &actions, nil, argv, envp)
    guard result == 0 else { throw TestClusterError(message: "cannot start \(arguments[0]): errno \(result)") }
    return pid
}

/// WIFEXITED / WEXITSTATUS / WTERMSIG, spelled out (the C macros are not imported): 128 + signal when killed.
func exitCode(_ status: Int32) -> Int32 {
    (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
}
