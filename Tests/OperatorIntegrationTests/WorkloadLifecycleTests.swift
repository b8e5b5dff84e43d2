import ConfidentialWorkload
import ControllerRuntime
import Foundation
import KubernetesClient
import Testing
import TestSupport

@Suite("Workload lifecycle against the real control plane")
struct WorkloadLifecycleTests {
    @Test func applyCreatesTheDeploymentAndReportsReady() async throws {
        try await Harness.with("lifecycle") { harness in

            let spec: JSONValue = [
                "replicas": 0,
                "nodeSelector": ["workload": "confidential"],
                "template": [
                    "metadata": ["labels": ["tier": "web"], "annotations": ["note": "kept"]],
                    "spec": ["containers": [["name": "app", "image": "nginx:1.27", "ports": [["containerPort": 80]]]]],
                ],
            ]
            let start = ContinuousClock.now
            let created = try await harness.createWorkload("web", spec: spec)
            let deployment = try await eventually(timeout: .seconds(30), "the Deployment") { try await harness.deployment("web") }
            let elapsed = ContinuousClock.now - start
            print("apply -> Deployment: \(elapsed)")

            #expect(deployment.metadata.labels?["app.kubernetes.io/managed-by"] == "cwo")
            #expect(deployment.metadata.labels?["cwo.dev/workload"] == "web")
            let owner = try #require(deployment.metadata.ownerReferences?.first)
            #expect(owner.kind == "ConfidentialWorkload" && owner.uid == created.metadata.uid && owner.controller == true)
            let template = try #require(deployment.raw[path: ["spec", "template"]])
            #expect(template[path: ["spec", "runtimeClassName"]] == "kata-cc")
            #expect(template[path: ["spec", "nodeSelector", "workload"]] == "confidential")
            #expect(template[path: ["metadata", "labels", "tier"]] == "web")
            #expect(template[path: ["metadata", "labels", "cwo.dev/workload"]] == "web")
            #expect(template[path: ["metadata", "annotations", "note"]] == "kept")
            #expect(deployment.raw[path: ["spec", "selector", "matchLabels"]] == ["cwo.dev/workload": "web"])
            let managers = deployment.metadata.managedFields?.compactMap(\.manager) ?? []
            #expect(managers.contains("cwo"), "written by server-side apply under the cwo field manager")

            // With 0 replicas the Deployment controller reports Available, so the workload is Ready.
            let ready = try await harness.waitForStatus("web", "Ready=True") { $0.condition("Ready")?.status == .true }
            let status = try #require(ready.status)
            #expect(status.deploymentName == "web")
            #expect(status.condition("RuntimeClassAvailable")?.status == .true)
            #expect(status.condition("DeploymentAvailable")?.status == .true)
            // cwo never writes the user's spec.
            #expect(ready.spec == created.spec)
            // (1.20 does not record the subresource in managedFields, so look at the fields themselves.)
            #expect(!(ready.metadata.managedFields ?? []).contains { $0.manager == "cwo" && $0.fieldsV1?["f:spec"] != nil })
        }
    }

    @Test func kubectlShowsTheColumns() async throws {
        try await Harness.with("columns") { harness in
            _ = try await harness.createWorkload("shown", spec: simpleSpec())
            _ = try await harness.waitForStatus("shown", "Ready=True") { $0.condition("Ready")?.status == .true }

            let table = try await kubectl(harness, ["get", "cw", "-n", harness.namespace])
            let header = table.split(separator: "\n").first.map(String.init) ?? ""
            #expect(header.split(separator: " ", omittingEmptySubsequences: true) == ["NAME", "READY", "REASON", "REPLICAS", "PLATFORM", "AGE"])
            #expect(table.contains("shown") && table.contains("True") && table.contains("Ready"))
            let wide = try await kubectl(harness, ["get", "cwl", "-n", harness.namespace, "-o", "wide"])
            #expect(wide.contains("POLICY-HASH"))
            let category = try await kubectl(harness, ["get", "confidential", "-n", harness.namespace])
            #expect(category.contains("shown"))
        }
    }

    @Test func editingTheWorkloadRollsTheDeployment() async throws {
        try await Harness.with("edit") { harness in
            _ = try await harness.createWorkload("app", spec: simpleSpec(image: "nginx:1.27"))
            let before = try await eventually("the Deployment") { try await harness.deployment("app") }

            let _: UntypedObject = try await harness.admin.patch(
                Harness.workloads, namespace: harness.namespace, name: "app",
                .merge(["spec": ["template": ["spec": ["containers": [["name": "app", "image": "nginx:1.28"]]]]]]))
            let after = try await eventually("the new image") { () -> UntypedObject? in
                let deployment = try await harness.deployment("app")
                return deployment?.raw[path: ["spec", "template", "spec", "containers"]]?.arrayValue?.first?["image"] == "nginx:1.28" ? deployment : nil
            }
            #expect((after.metadata.generation ?? 0) > (before.metadata.generation ?? 0))
            _ = try await harness.waitForStatus("app", "observedGeneration 2") { $0.observedGeneration == 2 }
        }
    }

    /// A Deployment deleted right after cwo created it (nothing else written since, so cwo still remembers
    /// creating it) comes back: the memory of a write only stands for the cache until the cache shows it.
    @Test func aDeploymentDeletedRightAfterItsCreationComesBack() async throws {
        try await Harness.with("recreate") { harness in
            _ = try await harness.createWorkload("app", spec: simpleSpec(replicas: 0))
            let created = try await harness.waitForRenderedDeployment("app")
            try await harness.admin.delete(.deployments, namespace: harness.namespace, name: "app")
            let recreated = try await eventually(timeout: .seconds(10), "the Deployment recreated") { () -> UntypedObject? in
                let next = try await harness.deployment("app")
                return next?.metadata.uid != created.metadata.uid ? next : nil
            }
            #expect(recreated.metadata.annotations?[Names.intentAnnotation] == created.metadata.annotations?[Names.intentAnnotation])
        }
    }

    @Test func driftIsRevertedAndOthersFieldsAreKept() async throws {
        try await Harness.with("drift") { harness in
            _ = try await harness.createWorkload("app", spec: simpleSpec(replicas: 0))
            _ = try await eventually("the Deployment") { try await harness.deployment("app") }

            // A hand edit of a field cwo owns (by another field manager) is reverted...
            let _: UntypedObject = try await harness.admin.patch(
                .deployments, namespace: harness.namespace, name: "app",
                .merge(["metadata": ["labels": ["team": "payments"]], "spec": ["replicas": 5]]), fieldManager: "kubectl-edit")
            _ = try await eventually("replicas reverted to 0") { () -> Bool? in
                try await harness.deployment("app")?.raw[path: ["spec", "replicas"]] == 0 ? true : nil
            }
            // ...while a label someone else added is left alone.
            let deployment = try #require(try await harness.deployment("app"))
            #expect(deployment.metadata.labels?["team"] == "payments")

            // A deleted Deployment comes back.
            try await harness.admin.delete(.deployments, namespace: harness.namespace, name: "app")
            let recreated = try await eventually("the Deployment recreated") { () -> UntypedObject? in
                let next = try await harness.deployment("app")
                return next?.metadata.uid != deployment.metadata.uid ? next : nil
            }
            #expect(recreated.metadata.labels?["cwo.dev/workload"] == "app")
        }
    }

    /// A workload quiet long enough has its remembered desired state forgotten (`cwo run` sweeps every
    /// 30 s): drift is still reverted and an edit still lands, from a desired state built again.
    @Test func aForgottenDesiredStateIsBuiltAgainForDriftAndEdits() async throws {
        try await Harness.with("forgotten") { harness in
            _ = try await harness.createWorkload("app", spec: simpleSpec(replicas: 0))
            _ = try await harness.waitForRenderedDeployment("app")
            // A sweep marks, the next forgets what no reconcile used in between (a reconcile may still
            // come from the Deployment's first status: sweep again until one forgets).
            _ = try await harness.waitForStatus("app", "observedGeneration 1") { $0.observedGeneration == 1 }
            _ = try await eventually("the quiet workload's desired state forgotten") { () -> Bool? in
                harness.workloadOperator.forgetQuietDesiredStates() == 1 ? true : nil
            }

            let _: UntypedObject = try await harness.admin.patch(
                .deployments, namespace: harness.namespace, name: "app", .merge(["spec": ["replicas": 3]]), fieldManager: "kubectl-edit")
            _ = try await eventually("replicas reverted to 0") { () -> Bool? in
                try await harness.deployment("app")?.raw[path: ["spec", "replicas"]] == 0 ? true : nil
            }

            harness.workloadOperator.forgetQuietDesiredStates()
            harness.workloadOperator.forgetQuietDesiredStates()
            try await harness.replaceSpec("app", simpleSpec(replicas: 0, image: "nginx:1.28"))
            let after = try await harness.waitForRenderedDeployment("app")
            #expect(after.raw[path: ["spec", "template", "spec", "containers"]]?.arrayValue?.first?["image"] == "nginx:1.28")
            _ = try await harness.waitForStatus("app", "observedGeneration 2") { $0.observedGeneration == 2 }
        }
    }

    @Test func aSettledDeploymentIsCachedAsASummaryAndHandEditsStillRevert() async throws {
        try await Harness.with("summary") { harness in
            _ = try await harness.createWorkload("app", spec: simpleSpec(replicas: 0))
            _ = try await harness.waitForRenderedDeployment("app")
            let key = ObjectKey(namespace: harness.namespace, name: "app")
            let cache = harness.workloadOperator.caches.deployments
            let summary = try await eventually("the Deployment cached as a summary") { cache.get(key).flatMap { $0.specIsSummary ? $0 : nil } }
            // What a reconcile still reads is kept (the images, the policy hash); the rest is not.
            #expect(summary.spec?[path: ["template", "spec", "containers"]]?.arrayValue?.first?["image"] == "nginx:1.27")
            #expect(summary.spec?[path: ["template", "metadata", "annotations", AgentPolicy.hashAnnotationKey]]?.stringValue?.count == 64)
            #expect(summary.spec?["replicas"] == nil)
            #expect(summary.spec?[path: ["template", "spec", "runtimeClassName"]] == nil)

            // A hand edit of a field cwo sets arrives whole, is reverted, and the answer settles again.
            let _: UntypedObject = try await harness.admin.patch(
                .deployments, namespace: harness.namespace, name: "app", .merge(["spec": ["replicas": 3]]), fieldManager: "kubectl-edit")
            _ = try await eventually("replicas reverted to 0") { () -> Bool? in
                try await harness.deployment("app")?.raw[path: ["spec", "replicas"]] == 0 ? true : nil
            }
            // The controller manager scales the pods back and reports it: wait until the cache is a summary
            // of the settled Deployment and the workload's status says so.
            _ = try await eventually(timeout: .seconds(30), "the reverted, settled Deployment cached as a summary") { () -> Deployment? in
                cache.get(key).flatMap {
                    $0.specIsSummary && $0.resourceVersion != summary.resourceVersion && $0.status?.observedGeneration == $0.metadata.generation
                        && ($0.status?.replicas ?? 0) == 0 ? $0 : nil
                }
            }
            _ = try await harness.waitForStatus("app", "no replicas") { $0.replicas == 0 }
            // The Deployment controller may still report the hand edit's 3 replicas and then 0 again (a
            // status that read 0 before it did satisfies the wait above), and cwo writes status for each
            // (the second while its cache may still hold the first: ReconcileBranchTests): wait until a
            // three seconds pass without a write (on two busy cores the controller's reports come a second
            // or more apart).
            var writes = harness.requests.writes
            var quietSeconds = 0
            for _ in 0..<30 where quietSeconds < 3 {
                try await Task.sleep(for: .seconds(1))
                quietSeconds = harness.requests.writes == writes ? quietSeconds + 1 : 0
                writes = harness.requests.writes
            }
            let quiet = quietSeconds >= 3
            #expect(quiet, "cwo kept writing for 30 s after the Deployment settled: \(harness.requests.snapshot)")
            // Reconciling the summary again writes nothing: its digest matches the intent.
            let before = harness.requests.snapshot
            await harness.workloadOperator.controller.queue.add(key)
            try await Task.sleep(for: .milliseconds(500))
            // On failure, the requests by method before and after say which write it was.
            #expect(harness.requests.writes == writes, "requests before \(before), after \(harness.requests.snapshot)")
            #expect(cache.get(key)?.specIsSummary == true)
            #expect(try await harness.workload("app").status?.replicas == 0)

            // A metadata edit keeps the generation, so the summary is carried over: the label cwo sets is
            // still compared, and reverted.
            let _: UntypedObject = try await harness.admin.patch(
                .deployments, namespace: harness.namespace, name: "app", .merge(["metadata": ["labels": [Names.workloadLabel: "other"]]]),
                fieldManager: "kubectl-label")
            _ = try await eventually("the label reverted") { () -> Bool? in
                try await harness.deployment("app")?.raw[path: ["metadata", "labels", Names.workloadLabel]] == "app" ? true : nil
            }
            _ = try await eventually("the summary carried over the metadata edits") { () -> Bool? in
                guard let cached = cache.get(key), cached.metadata.labels?[Names.workloadLabel] == "app" else { return nil }
                return cached.specIsSummary ? true : nil
            }
        }
    }

    @Test func deletingTheWorkloadRemovesTheDeployment() async throws {
        try await Harness.with("delete") { harness in
            _ = try await harness.createWorkload("gone", spec: simpleSpec())
            _ = try await eventually("the Deployment") { try await harness.deployment("gone") }
            try await harness.admin.delete(Harness.workloads, namespace: harness.namespace, name: "gone")
            // The garbage collector (kube-controller-manager) follows the owner reference. It discovers a new
            // CRD's kind only every 30 s, so a cluster whose CRD was just installed may take that long.
            _ = try await eventually(timeout: .seconds(75), "the Deployment deleted") { () -> Bool? in
                try await harness.deployment("gone") == nil ? true : nil
            }
        }
    }

    @Test func aMissingRuntimeClassIsReportedAndHealsWhenItAppears() async throws {
        let harness = try await Harness("runtimeclass")
        let runtimeClass = "kata-test-\(UUID().uuidString.prefix(6).lowercased())"
        harness.start()
        defer { Task { try? await harness.admin.delete(.runtimeClasses, name: runtimeClass); await harness.stop() } }
        _ = try await harness.createWorkload("rc", spec: simpleSpec(runtimeClass: runtimeClass))
        let missing = try await harness.waitForStatus("rc", "RuntimeClassAvailable=False") { $0.condition("RuntimeClassAvailable")?.status == .false }
        #expect(missing.status?.condition("RuntimeClassAvailable")?.reason == "RuntimeClassNotFound")
        #expect(missing.status?.condition("Ready")?.status == .false)
        #expect(missing.status?.condition("Ready")?.reason == "RuntimeClassNotFound")

        try await harness.ensureRuntimeClass(runtimeClass)
        _ = try await harness.waitForStatus("rc", "RuntimeClassAvailable=True") { $0.condition("RuntimeClassAvailable")?.status == .true }
    }

    /// A Deployment the API server refuses (here a ResourceQuota that allows no Deployments in the
    /// namespace; an admission webhook answers the same way) is reported with the server's answer; once
    /// the quota goes, the retries land and the condition clears.
    @Test func aRefusedDeploymentIsReportedAndHealsWhenAllowed() async throws {
        try await Harness.with("refused") { harness in
            let quotas = Resource(group: "", version: "v1", plural: "resourcequotas", kind: "ResourceQuota", namespaced: true)
            let quota: JSONValue = ["apiVersion": "v1", "kind": "ResourceQuota", "metadata": ["name": "no-deployments"], "spec": ["hard": ["count/deployments.apps": "0"]]]
            let _: UntypedObject = try await harness.admin.create(quotas, namespace: harness.namespace, try UntypedObject(quota))
            // The quota admission enforces a quota once the controller manager has filled in its status.
            _ = try await eventually("the quota in force") { () -> Bool? in
                let live: UntypedObject = try await harness.admin.get(quotas, namespace: harness.namespace, name: "no-deployments")
                return live.raw[path: ["status", "hard"]] != nil ? true : nil
            }
            _ = try await harness.createWorkload("app", spec: simpleSpec(replicas: 0))
            let refused = try await harness.waitForStatus("app", "DeploymentRejected") { $0.condition("DeploymentAvailable")?.reason == "DeploymentRejected" }
            #expect(refused.status?.condition("DeploymentAvailable")?.status == .false)
            #expect(refused.status?.condition("DeploymentAvailable")?.message.contains("no-deployments") == true, "the server's answer names the quota")
            #expect(refused.status?.condition("Ready")?.reason == "DeploymentRejected")
            #expect(try await harness.deployment("app") == nil)

            // The quota admission may remember a deleted quota for up to 30 s (its live-lookup cache).
            try await harness.admin.delete(quotas, namespace: harness.namespace, name: "no-deployments")
            _ = try await eventually(timeout: .seconds(90), "the Deployment once the quota is gone") { try await harness.deployment("app") }
            _ = try await harness.waitForStatus("app", "the rejection cleared", timeout: .seconds(30)) {
                $0.condition("DeploymentAvailable")?.reason != "DeploymentRejected"
            }
        }
    }

    @Test func anInvalidWorkloadIsReportedWithoutDisturbingOthers() async throws {
        try await Harness.with("invalid") { harness in
            // Passes the schema (labels are strings), fails cwo: the selector label names another workload.
            let invalid: JSONValue = [
                "replicas": 0,
                "template": ["metadata": ["labels": ["cwo.dev/workload": "someone-else"]], "spec": ["containers": [container()]]],
            ]
            _ = try await harness.createWorkload("bad", spec: invalid)
            _ = try await harness.createWorkload("good", spec: simpleSpec())
            let bad = try await harness.waitForStatus("bad", "InvalidSpec") { $0.condition("Ready")?.reason == "InvalidSpec" }
            #expect(bad.status?.condition("Ready")?.message.contains("spec.template.metadata.labels[cwo.dev/workload]") == true)
            #expect(try await harness.deployment("bad") == nil)
            _ = try await harness.waitForStatus("good", "Ready=True") { $0.condition("Ready")?.status == .true }
        }
    }

    @Test func aConvergedClusterWritesNothing() async throws {
        try await Harness.with("quiet") { harness in
            for index in 0..<10 {
                _ = try await harness.createWorkload("w\(index)", spec: simpleSpec(replicas: index % 2))
            }
            for index in 0..<10 {
                _ = try await harness.waitForStatus("w\(index)", "status written") { $0.condition("DeploymentAvailable")?.status != .unknown }
            }
            // Let the Deployment controller's status updates settle, then count.
            try await Task.sleep(for: .seconds(3))
            let before = harness.requests.writes
            try await Task.sleep(for: .seconds(5))
            let after = harness.requests.writes
            print("writes while converged over 5 s: \(after - before); all requests: \(harness.requests.snapshot)")
            #expect(after - before == 0)
        }
    }
}

func kubectl(_ harness: Harness, _ arguments: [String]) async throws -> String {
    try await runCommand(["kubectl", "--kubeconfig", harness.cluster.adminKubeconfig] + arguments)
}
