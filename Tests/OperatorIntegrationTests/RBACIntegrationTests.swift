import ConfidentialWorkload
import ControllerRuntime
import Foundation
import KubernetesClient
import Logging
import Synchronization
import Testing
import TestSupport

/// The shipped RBAC (manifests/rbac) is enough for the whole lifecycle, and every rule in it is needed.
/// cwo runs impersonating a service account bound only to those rules (the test apiserver authorizes with RBAC).
@Suite("Least-privilege RBAC against the real control plane")
struct RBACIntegrationTests {
    static func manifest(_ file: String) throws -> [JSONValue] {
        try YAMLDocuments.parse(try String(contentsOfFile: TestCluster.packageRoot + "/manifests/rbac/" + file, encoding: .utf8))
    }

    struct Outcome { var forbidden: Int; var converged: Bool; var events: Int }

    /// Binds `rules` (cluster-wide) and `leaseRules` (in the namespace) to a fresh identity, runs the
    /// operator as it with leader election and events, and applies a Key Vault workload and a Provided one.
    static func scenario(_ label: String, rules: [JSONValue], leaseRules: [JSONValue], stopOnForbidden: Bool) async throws -> Outcome {
        let cluster = try await TestCluster.shared()
        let admin = try cluster.adminClient()
        defer { Task { try? await admin.shutdown() } }
        try await cluster.installCRDs(admin)
        let namespace = try await admin.makeTestNamespace("rbac-\(label)")
        let account = "cwo-\(label)"
        let subject: JSONValue = ["kind": "ServiceAccount", "name": .string(account), "namespace": "cwo-system"]
        let roleName = "cwo-test-\(namespace)"
        let _: UntypedObject = try await admin.apply(.clusterRoles, name: roleName,
            ["apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": ["name": .string(roleName)], "rules": .array(rules)] as JSONValue,
            fieldManager: "cwo-tests", force: true)
        let _: UntypedObject = try await admin.apply(.clusterRoleBindings, name: roleName,
            ["apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": ["name": .string(roleName)],
             "roleRef": ["apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": .string(roleName)], "subjects": [subject]] as JSONValue,
            fieldManager: "cwo-tests", force: true)
        let _: UntypedObject = try await admin.apply(.roles, namespace: namespace, name: "leases",
            ["apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": ["name": "leases"], "rules": .array(leaseRules)] as JSONValue,
            fieldManager: "cwo-tests", force: true)
        let _: UntypedObject = try await admin.apply(.roleBindings, namespace: namespace, name: "leases",
            ["apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": ["name": "leases"],
             "roleRef": ["apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "leases"], "subjects": [subject]] as JSONValue,
            fieldManager: "cwo-tests", force: true)
        defer {
            Task {
                try? await admin.delete(.clusterRoleBindings, name: roleName)
                try? await admin.delete(.clusterRoles, name: roleName)
            }
        }
        let _: UntypedObject = try await admin.apply(.runtimeClasses, name: "kata-cc",
            ["apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": ["name": "kata-cc"], "handler": "kata-cc"] as JSONValue, fieldManager: "cwo-tests", force: true)
        let _: UntypedObject = try await admin.create(.configMaps, namespace: namespace, try UntypedObject(
            ["apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": "given-policy"], "data": ["policy.rego": "package agent_policy\n\ndefault CreateContainerRequest := true\n"]]))
        let container: JSONValue = ["name": "app", "image": "nginx:1.27", "resources": ["limits": ["memory": "128Mi"]]]
        for (name, extra) in [
            ("kv", ["attestation": ["maaEndpoint": "sharedeus.eus.attest.azure.net"], "keyVault": ["name": "v", "keyName": "k", "clientID": "c"]] as [String: JSONValue]),
            ("given", ["policy": ["mode": "Provided", "configMapRef": ["name": "given-policy", "key": "policy.rego"]]]),
        ] {
            var spec: [String: JSONValue] = ["replicas": 0, "template": ["spec": ["containers": [container]]]]
            spec.merge(extra) { $1 }
            let body: JSONValue = ["apiVersion": "cwo.dev/v1alpha1", "kind": "ConfidentialWorkload", "metadata": ["name": .string(name)], "spec": .object(spec)]
            let _: UntypedObject = try await admin.create(ConfidentialWorkload.resource, namespace: namespace, try UntypedObject(body))
        }

        let forbidden = Mutex(0)
        var configuration = try ClientConfiguration.load(kubeconfig: cluster.adminKubeconfig)
        configuration.impersonateUser = "system:serviceaccount:cwo-system:\(account)"
        configuration.maxAttempts = 1
        let client = try KubeClient(configuration: configuration) { _, code, _, _ in
            if code == "403" { forbidden.withLock { $0 += 1 } }
        }
        defer { Task { try? await client.shutdown() } }
        var logger = Logger(label: "cwo.rbac-test")
        logger.logLevel = ProcessInfo.processInfo.environment["CWO_TEST_LOG"] == "1" ? .warning : .critical
        var options = WorkloadOperator.Options(namespace: namespace, concurrency: 2)
        options.reflector.initialBackoff = .milliseconds(200)
        let events = EventRecorder(client: client, controller: "cwo", instance: account, logger: logger)
        let workloadOperator = WorkloadOperator(client: client, options: options, logger: logger, events: events)
        var election = LeaderElector.Configuration(namespace: namespace, name: "cwo-leader", identity: account)
        election.retryPeriod = .milliseconds(500)
        let elector = LeaderElector(client: client, configuration: election, logger: logger)
        let running = Task { try? await elector.run { await workloadOperator.run() } }
        defer { running.cancel() }

        var outcome = Outcome(forbidden: 0, converged: false, events: 0)
        // The full-rules run stops as soon as it converged; give it room on a loaded machine.
        let deadline = ContinuousClock.now + .seconds(stopOnForbidden ? 12 : 30)
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(250))
            outcome.forbidden = forbidden.withLock { $0 }
            if stopOnForbidden && outcome.forbidden > 0 { break }
            let kv: ConfidentialWorkload = try await admin.get(ConfidentialWorkload.resource, namespace: namespace, name: "kv")
            let given: ConfidentialWorkload = try await admin.get(ConfidentialWorkload.resource, namespace: namespace, name: "given")
            let eventList: ObjectList<UntypedObject> = try await admin.list(.events, namespace: namespace)
            outcome.events = eventList.items.filter { $0.raw["reportingController"] == "cwo" }.count
            outcome.converged = kv.status?.condition("Ready")?.status == .true && given.status?.condition("Ready")?.status == .true
                && given.status?.policyMode == "Provided" && outcome.events > 0
            if outcome.converged && !stopOnForbidden { break }
        }
        running.cancel()
        await running.value
        return outcome
    }

    @Test func theShippedRulesAreEnoughForTheWholeLifecycle() async throws {
        let rules = try #require(try Self.manifest("cluster_role.yaml").first?["rules"]?.arrayValue)
        let leaseRules = try #require(try Self.manifest("leader_election_role.yaml").first?["rules"]?.arrayValue)
        let outcome = try await Self.scenario("full", rules: rules, leaseRules: leaseRules, stopOnForbidden: false)
        #expect(outcome.converged, "not converged with the shipped RBAC")
        #expect(outcome.forbidden == 0, "\(outcome.forbidden) requests were forbidden")
    }

    @Test func everyRuleIsNeeded() async throws {
        let rules = try #require(try Self.manifest("cluster_role.yaml").first?["rules"]?.arrayValue)
        let leaseRules = try #require(try Self.manifest("leader_election_role.yaml").first?["rules"]?.arrayValue)
        #expect(!rules.description.contains("\"*\""), "no wildcards")
        #expect(!rules.contains { $0["resources"]?.arrayValue?.contains("secrets") == true }, "cwo never reads Secrets")
        // One run per rule left out (and one without the lease rule), in parallel.
        let variants: [(String, [JSONValue], [JSONValue])] = rules.indices.map { index in
            var reduced = rules
            reduced.remove(at: index)
            return ("minus\(index)", reduced, leaseRules)
        } + [("minuslease", rules, [])]
        try await withThrowingTaskGroup(of: (String, Outcome).self) { group in
            for (label, reduced, lease) in variants {
                group.addTask { (label, try await Self.scenario(label, rules: reduced, leaseRules: lease, stopOnForbidden: true)) }
            }
            for try await (label, outcome) in group {
                let removed = label == "minuslease" ? "the lease rule" : "\(rules[Int(label.dropFirst(5)) ?? 0])"
                #expect(outcome.forbidden > 0 || !outcome.converged, "without \(removed) everything still worked")
            }
        }
    }
}
