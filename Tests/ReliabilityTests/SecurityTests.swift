import ConfidentialWorkload
import Foundation
import KubernetesClient
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

@Suite("Security")
struct SecurityTests {
    /// A full run at the most verbose log level never prints the token or the SKR arguments.
    @Test func noSecretsInTheLogsOfAFullRun() async throws {
        let cluster = try await TestCluster.shared()
        let admin = try cluster.adminClient()
        defer { Task { try? await admin.shutdown() } }
        let namespace = try await admin.makeTestNamespace("secrets")
        let cwo = try BackgroundProcess([try cwoBinary, "run", "--no-resolve-images", "--kubeconfig", cluster.adminKubeconfig, "--namespace", namespace, "--log-level", "trace",
            "--log-format", "json", "--metrics-bind-address", "0", "--health-probe-bind-address", "0"])
        defer { cwo.stop() }
        let _: UntypedObject = try await admin.create(ConfidentialWorkload.resource, namespace: namespace, try UntypedObject(workloadBody("kept", keyVault: true)))
        let _: UntypedObject = try await admin.create(ConfidentialWorkload.resource, namespace: namespace, try UntypedObject(
            ["apiVersion": "cwo.dev/v1alpha1", "kind": "ConfidentialWorkload", "metadata": ["name": "broken"],
             "spec": ["template": ["spec": ["containers": [["name": "app", "image": "x:1"]], "volumes": [["name": "h", "hostPath": ["path": "/"]]]]]]]))
        _ = try await eventually(timeout: .seconds(20), "the Key Vault workload reconciled") { () -> Bool? in
            let workload: ConfidentialWorkload = try await admin.get(ConfidentialWorkload.resource, namespace: namespace, name: "kept")
            return workload.status?.observedGeneration == workload.metadata.generation && workload.status?.policyHash != nil ? true : nil
        }
        try await Task.sleep(for: .seconds(1))
        cwo.signal(SIGTERM)
        _ = await cwo.wait(timeout: .seconds(10))
        let log = cwo.log
        let token = try String(contentsOfFile: cluster.directory + "/admin.token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let skrArgs = AttestationBuilder.sideCarArgs(AttestationSettings())
        #expect(log.count > 1000, "the run logged: \(log.count) bytes")
        #expect(!log.contains(token), "the API token is in the logs")
        #expect(!log.contains(skrArgs), "SkrSideCarArgs is in the logs")
        #expect(!log.contains("Bearer"))
    }

    /// TLS is verified by default: without the cluster's CA the client refuses the server.
    @Test func tlsIsVerifiedByDefault() async throws {
        let cluster = try await TestCluster.shared()
        var configuration = try ClientConfiguration.load(kubeconfig: cluster.adminKubeconfig)
        configuration.certificateAuthority = nil
        configuration.maxAttempts = 1
        let client = try KubeClient(configuration: configuration)
        defer { Task { try? await client.shutdown() } }
        await #expect(throws: KubeClientError.self) { let _: ServerVersion = try await client.serverVersion() }

        configuration.insecureSkipTLSVerify = true
        let insecure = try KubeClient(configuration: configuration)
        defer { Task { try? await insecure.shutdown() } }
        let version: ServerVersion = try await insecure.serverVersion()
        #expect(version.major == "1")
        #expect(configuration.summary.contains("insecure-skip-tls-verify=true"), "the insecure setting is visible in the startup log line")
    }
}
