@testable import ConfidentialWorkload
import Foundation
import KubernetesClient
import OCIRegistry
import Testing

/// genpolicy's own policy test cases (`shared/peer/genpolicy`, see its README): each pod becomes a
/// workload, cwo generates its policy, and every case is evaluated in order, with the agent's state and the
/// protobuf defaults, by both engines. cwo must agree with genpolicy's verdict, except where listed below.
@Suite("genpolicy's test cases, with cwo's policy")
struct GenpolicyConformanceTests {
    /// Cases cwo cannot agree on yet, by `<directory>#<index>`, with the reason.
    static let disagreements: [String: String] = [
        // Also: its sandbox id is not the one the pod's pause container (case #0) pinned.
        "createcontainer/security_context/runas#1": imageConfig + " (its env REDIS_PORT, WORKDIR /data, VOLUMEs /data and /node-conf)",
        "createcontainer/security_context/supplemental_groups#0": imageConfig + " (its env REDIS_PORT, WORKDIR /data, VOLUMEs /data and /node-conf)",
        // Also: the recorded request holds genpolicy's placeholders where a runtime sends values
        // (capabilities "$(default_caps)", "HOSTNAME=$(host-name)").
        "createcontainer/volumes/container_image#0": imageConfig + " (its env REDIS_PORT, WORKDIR /data, VOLUMEs /data and /node-conf)",
    ]
    static let imageConfig = "needs the image config from a registry"

    /// `shared/peer/genpolicy`: $CWO_SHARED_DIR/peer/genpolicy, or the first `shared/peer/genpolicy` found
    /// walking up from this file (CI has `shared/` beside the clone).
    static var suite: URL? {
        if let shared = ProcessInfo.processInfo.environment["CWO_SHARED_DIR"] {
            return URL(fileURLWithPath: shared).appendingPathComponent("peer/genpolicy")
        }
        var directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while directory.path != "/" {
            let candidate = directory.appendingPathComponent("shared/peer/genpolicy")
            if FileManager.default.fileExists(atPath: candidate.appendingPathComponent("testdata").path) { return candidate }
            directory.deleteLastPathComponent()
        }
        return nil
    }

    struct Case {
        var id: String
        var kind: String
        var allowed: Bool
        var request: JSONValue
    }

    /// Each test directory: the workload's policy and its cases, in order.
    static func directories(_ suite: URL) throws -> [(name: String, policy: AgentPolicy, cases: [Case])] {
        let testdata = suite.appendingPathComponent("testdata")
        let paths = FileManager.default.enumerator(atPath: testdata.path)?.compactMap { $0 as? String } ?? []
        return try paths.filter { $0.hasSuffix("testcases.json") }.sorted().map { path in
            let name = String(path.dropLast("/testcases.json".count))
            let folder = testdata.appendingPathComponent(name)
            let cases = try JSONDecoder().decode([JSONValue].self, from: Data(contentsOf: folder.appendingPathComponent("testcases.json")))
                .enumerated().map { index, item in
                    Case(id: "\(name)#\(index)", kind: item["kind"]?.stringValue ?? "", allowed: item["allowed"]?.boolValue ?? false,
                         request: item["request"] ?? [:])
                }
            let documents = try YAMLDocuments.parse(String(contentsOf: folder.appendingPathComponent("pod.yaml"), encoding: .utf8))
            let pod = try #require(documents.first { ["Pod", "Deployment"].contains($0["kind"]?.stringValue) })
            return (name, policy(pod, cases: cases), cases)
        }
    }

    /// The pod as a workload: its template, its namespace, the policy settings of a workload that sets none.
    /// A pod.yaml without a namespace was applied with `-n`: the workload lives where its cases ran.
    static func policy(_ pod: JSONValue, cases: [Case], images: [String: ImageFacts] = [:]) -> AgentPolicy {
        let metadata = pod["metadata"] ?? [:]
        let isDeployment = pod["kind"]?.stringValue == "Deployment"
        let template: JSONValue = isDeployment ? pod[path: ["spec", "template"]] ?? [:] : ["metadata": metadata, "spec": pod["spec"] ?? [:]]
        let ranIn = cases.lazy.compactMap { $0.request[path: ["OCI", "Annotations", "io.kubernetes.cri.sandbox-namespace"]]?.stringValue }.first
        let namespace = metadata["namespace"]?.stringValue ?? ranIn ?? "default"
        let name = metadata["name"]?.stringValue
        let pods: PolicyBuilder.PodNames = isDeployment ? .deployment(name ?? "")
            : name.map { .pod($0) } ?? .generated(metadata["generateName"]?.stringValue ?? "")
        return PolicyBuilder.generate(template: template, namespace: namespace, settings: PolicySettings(), workloadIdentity: false, pods: pods,
                                      images: images)
    }

    /// The agent asks `data.agent_policy.<request message>` for every RPC: each must have a default.
    @Test func everyRequestTheAgentAsksAboutIsDefined() throws {
        let suite = try #require(Self.suite, "shared/peer/genpolicy not found: set CWO_SHARED_DIR")
        let proto = try String(contentsOf: suite.appendingPathComponent("protos/agent.proto"), encoding: .utf8)
        let requests = proto.split(separator: "\n").compactMap { line -> String? in
            guard let rpc = line.firstMatch(of: /^\s*rpc\s+\w+\s*\(\s*([\w.]+)\s*\)/) else { return nil }
            return String(rpc.1)
        }
        #expect(requests.count > 30)
        let policy = PolicyBuilder.generate(template: ["spec": ["containers": []]], namespace: "ns", settings: PolicySettings(), workloadIdentity: false)
        for request in requests {
            #expect(policy.text.contains("\ndefault \(request) := "), "\(request) has no default")
        }
    }

    @Test func cwoAgreesWithGenpolicyInBothEngines() async throws {
        let suite = try #require(Self.suite, "shared/peer/genpolicy not found: set CWO_SHARED_DIR")
        let directories = try Self.directories(suite)
        var table: [String: (allowed: Int, allowedAgree: Int, denied: Int, deniedAgree: Int)] = [:]
        var unexpected: [String] = []
        var listedAndAgreeing: [String] = []
        for directory in directories {
            let sequence = directory.cases.map { AgentSimulator.Request(endpoint: $0.kind, input: $0.request) }
            let results = try await AgentSimulator.run(policy: directory.policy.text, sequences: [sequence],
                                                       protos: suite.appendingPathComponent("protos").path)
            for engine in AgentSimulator.engines {
                let verdicts = try #require(results[engine]?.first)
                for (testCase, verdict) in zip(directory.cases, verdicts) {
                    let agrees = verdict == .bool(testCase.allowed)
                    var row = table["\(testCase.kind) \(engine)"] ?? (0, 0, 0, 0)
                    if testCase.allowed { row.allowed += 1; row.allowedAgree += agrees ? 1 : 0 } else { row.denied += 1; row.deniedAgree += agrees ? 1 : 0 }
                    table["\(testCase.kind) \(engine)"] = row
                    let listed = Self.disagreements[testCase.id] != nil
                    if !agrees && !listed { unexpected.append("\(engine) \(testCase.id) genpolicy: \(testCase.allowed), cwo: \(verdict)") }
                    if agrees && listed { listedAndAgreeing.append(testCase.id) }
                }
            }
        }
        print("genpolicy agreement (allowed cases allowed, denied cases denied):")
        for (key, row) in table.sorted(by: { $0.key < $1.key }) {
            print("  \(key): allowed \(row.allowedAgree)/\(row.allowed), denied \(row.deniedAgree)/\(row.denied)")
        }
        #expect(unexpected.isEmpty, "disagreements not listed: \(unexpected.joined(separator: "\n"))")
        #expect(listedAndAgreeing.isEmpty, "listed as disagreements but agreeing now: \(listedAndAgreeing)")
    }
}

/// One-field changes a malicious host could make to an allowed CreateContainer request; each must be denied
/// by both engines. The base is genpolicy's allowed request for a Deployment's container pulled in the guest.
@Suite("Mutated CreateContainer requests")
struct PolicyMutationTests {
    typealias Mutation = @Sendable (inout JSONValue) -> Void

    static func setProcess(_ key: String, _ value: JSONValue) -> Mutation { { $0["OCI"]?["Process"]?[key] = value } }
    static func addCapability(_ set: String) -> Mutation {
        { request in
            let granted = request[path: ["OCI", "Process", "Capabilities", set]]?.arrayValue ?? []
            request["OCI"]?["Process"]?["Capabilities"]?[set] = .array(granted + ["CAP_SYS_ADMIN"])
        }
    }
    static func append(_ path: [String], _ value: JSONValue) -> Mutation {
        { request in
            var list = request[path: path]?.arrayValue ?? []
            list.append(value)
            switch path.count {
            case 1: request[path[0]] = .array(list)
            case 2: request[path[0]]?[path[1]] = .array(list)
            default: request[path[0]]?[path[1]]?[path[2]] = .array(list)
            }
        }
    }

    static let mutations: [(String, Mutation)] = [
        ("image swap for guest pull", { request in
            request["storages"] = .array((request["storages"]?.arrayValue ?? []).map { storage in
                var storage = storage
                if storage["driver"] == "image_guest_pull" { storage["source"] = "quay.io/evil/busybox:latest" }
                return storage
            })
        }),
        ("layer with a bogus dm-verity hash", append(["storages"], [
            "driver": "blk", "driver_options": ["io.katacontainers.fs-opt.root_hash=0000000000000000"], "source": "00/01",
            "fstype": "erofs", "options": ["ro"], "mount_point": "/run/kata-containers/sandbox/layers/bogus", "shared": false, "fs_group": nil,
        ])),
        ("OCI prestart hook", { $0["OCI"]?["Hooks"] = ["Prestart": [["Path": "/bin/sh", "Args": ["sh", "-c", "id"], "Env": [], "Timeout": 0]]] }),
        ("rw bind of the guest root", append(["OCI", "Mounts"], ["destination": "/host", "source": "/", "type_": "bind", "options": ["rbind", "rw"]])),
        ("CAP_SYS_ADMIN effective", addCapability("Effective")),
        ("CAP_SYS_ADMIN permitted", addCapability("Permitted")),
        ("CAP_SYS_ADMIN ambient", addCapability("Ambient")),
        ("UID change", { $0["OCI"]?["Process"]?["User"]?["UID"] = 4242 }),
        ("GID change", { $0["OCI"]?["Process"]?["User"]?["GID"] = 4242 }),
        ("cwd change", setProcess("Cwd", "/etc")),
        ("terminal", setProcess("Terminal", true)),
        ("no-new-privileges", setProcess("NoNewPrivileges", true)),
        ("read-only root", { $0["OCI"]?["Root"]?["Readonly"] = true }),
        ("dropped mount namespace", { request in
            let namespaces = request[path: ["OCI", "Linux", "Namespaces"]]?.arrayValue ?? []
            request["OCI"]?["Linux"]?["Namespaces"] = .array(namespaces.filter { $0["Type"] != "mount" })
        }),
        ("shared sandbox pid namespace", { $0["sandbox_pidns"] = true }),
        ("kernel.core_pattern sysctl", { $0["OCI"]?["Linux"]?["Sysctl"] = ["kernel.core_pattern": "|/bin/sh"] }),
        ("/dev/mem device", append(["OCI", "Linux", "Devices"], ["Path": "/dev/mem", "Type": "c", "Major": 1, "Minor": 1, "FileMode": 438, "UID": 0, "GID": 0])),
        ("extra virtio-fs storage", append(["storages"], [
            "driver": "virtio-fs", "driver_options": [], "source": "kataShared", "fstype": "virtiofs", "options": [],
            "mount_point": "/run/kata-containers/shared/containers/evil", "shared": false, "fs_group": nil,
        ])),
    ]

    @Test func everyMutationIsDeniedByBothEngines() async throws {
        let suite = try #require(GenpolicyConformanceTests.suite, "shared/peer/genpolicy not found: set CWO_SHARED_DIR")
        let directory = try #require(try GenpolicyConformanceTests.directories(suite).first { $0.name == "state/execprocessdeployment" })
        let base = try #require(directory.cases.first).request
        var sequences = [[AgentSimulator.Request(endpoint: "CreateContainerRequest", input: base)]]
        for (_, mutate) in Self.mutations {
            var request = base
            mutate(&request)
            sequences.append([AgentSimulator.Request(endpoint: "CreateContainerRequest", input: request)])
        }
        // Another pod's sandbox name (a name of the same Deployment) for a second container of the pinned pod.
        var other = base
        other["container_id"] = .string(String(repeating: "e", count: 64))
        other["OCI"]?["Annotations"]?["io.kubernetes.cri.sandbox-name"] = "execprocessnamed-7c56d66754-zzzzz"
        sequences.append([AgentSimulator.Request(endpoint: "CreateContainerRequest", input: base),
                          AgentSimulator.Request(endpoint: "CreateContainerRequest", input: other)])
        let names = ["unchanged"] + Self.mutations.map(\.0) + ["another pod's sandbox name"]
        let results = try await AgentSimulator.run(policy: directory.policy.text, sequences: sequences, protos: suite.appendingPathComponent("protos").path)
        for engine in AgentSimulator.engines {
            let verdicts = try #require(results[engine]).map { $0.last ?? .null }
            #expect(verdicts.first == true, "\(engine): the unchanged request must be allowed")
            for (name, verdict) in zip(names, verdicts).dropFirst() {
                #expect(verdict == false, "\(engine): \(name) was not denied: \(verdict)")
            }
        }
    }

    @Test func explainNamesTheFailingCheck() async throws {
        let suite = try #require(GenpolicyConformanceTests.suite, "shared/peer/genpolicy not found: set CWO_SHARED_DIR")
        let directory = try #require(try GenpolicyConformanceTests.directories(suite).first { $0.name == "state/execprocessdeployment" })
        var request = try #require(directory.cases.first).request
        Self.addCapability("Effective")(&request)
        let failed = try await AgentSimulator.failedChecks(policy: directory.policy.text, endpoint: "CreateContainerRequest", input: request,
                                                           protos: suite.appendingPathComponent("protos").path)
        for engine in AgentSimulator.engines {
            #expect(failed[engine] == ["all five capability sets"], "\(engine)")
        }
    }

    @Test func variablesAreAllowedByTheirSourceOnly() async throws {
        let suite = try #require(GenpolicyConformanceTests.suite, "shared/peer/genpolicy not found: set CWO_SHARED_DIR")
        let documents = try YAMLDocuments.parse(String(contentsOf: suite.appendingPathComponent("testdata/state/execprocessdeployment/pod.yaml"), encoding: .utf8))
        var pod = try #require(documents.first)
        pod["spec"]?["template"]?["metadata"]?["labels"]?["tier"] = "web"
        var container = try #require(pod[path: ["spec", "template", "spec", "containers"]]?.arrayValue?.first)
        container["env"] = [
            ["name": "MODE", "value": "fast"],
            ["name": "URL", "value": "http://$(MODE)/$(TOKEN)/$$(MODE)"],
            ["name": "TOKEN", "valueFrom": ["secretKeyRef": ["name": "s", "key": "k"]]],
            ["name": "TIER", "valueFrom": ["fieldRef": ["fieldPath": "metadata.labels['tier']"]]],
        ]
        pod["spec"]?["template"]?["spec"]?["containers"] = [container]
        let cases = try GenpolicyConformanceTests.directories(suite).first { $0.name == "state/execprocessdeployment" }?.cases ?? []
        let policy = GenpolicyConformanceTests.policy(pod, cases: cases)
        let base = try #require(cases.first).request
        let env = base[path: ["OCI", "Process", "Env"]]?.arrayValue ?? []
        let variants: [([JSONValue], Bool)] = [
            (["MODE=fast", "URL=http://fast/s3cr3t/$(MODE)", "TOKEN=s3cr3t", "TIER=web"], true),
            (["MODE=slow"], false),
            (["URL=http://slow/x/$(MODE)"], false),
            (["TIER=db"], false),
            (["LD_PRELOAD=/evil.so"], false),
            (["PATH=/evil"], true), // an image-config name (policy.imageEnvVars), any value: the named weaker rule
        ]
        var sequences: [[AgentSimulator.Request]] = []
        for (extra, _) in variants {
            var request = base
            request["OCI"]?["Process"]?["Env"] = .array(env.filter { $0.stringValue?.hasPrefix("PATH=") != true } + extra)
            sequences.append([AgentSimulator.Request(endpoint: "CreateContainerRequest", input: request)])
        }
        let results = try await AgentSimulator.run(policy: policy.text, sequences: sequences, protos: suite.appendingPathComponent("protos").path)
        for engine in AgentSimulator.engines {
            let verdicts = try #require(results[engine]).map { $0[0] }
            #expect(verdicts == variants.map { .bool($0.1) }, "\(engine): \(verdicts)")
        }
    }

    @Test func onlyADeclaredPrivilegedContainerRunsPrivileged() async throws {
        let suite = try #require(GenpolicyConformanceTests.suite, "shared/peer/genpolicy not found: set CWO_SHARED_DIR")
        let directory = try #require(try GenpolicyConformanceTests.directories(suite).first { $0.name == "state/execprocessdeployment" })
        let documents = try YAMLDocuments.parse(String(contentsOf: suite.appendingPathComponent("testdata/state/execprocessdeployment/pod.yaml"), encoding: .utf8))
        var pod = try #require(documents.first)
        var container = try #require(pod[path: ["spec", "template", "spec", "containers"]]?.arrayValue?.first)
        container["securityContext"] = ["privileged": true]
        pod["spec"]?["template"]?["spec"]?["containers"] = [container]
        let privilegedPolicy = GenpolicyConformanceTests.policy(pod, cases: directory.cases)

        // What containerd sends for a privileged container: every capability, rw sysfs and cgroup, nothing masked.
        var request = try #require(directory.cases.first).request
        let all = JSONValue.array(RuntimeFacts.allCapabilities.map { .string($0) })
        for set in ["Bounding", "Effective", "Permitted"] { request["OCI"]?["Process"]?["Capabilities"]?[set] = all }
        request["OCI"]?["Linux"]?["MaskedPaths"] = []
        request["OCI"]?["Linux"]?["ReadonlyPaths"] = []
        let mounts = request[path: ["OCI", "Mounts"]]?.arrayValue ?? []
        request["OCI"]?["Mounts"] = .array(mounts.map { mount in
            guard ["sysfs", "cgroup"].contains(mount["type_"]?.stringValue) else { return mount }
            var mount = mount
            mount["options"] = .array((mount["options"]?.arrayValue ?? []).map { $0 == "ro" ? "rw" : $0 })
            return mount
        })
        let sequence = [AgentSimulator.Request(endpoint: "CreateContainerRequest", input: request)]
        let protos = suite.appendingPathComponent("protos").path
        let declared = try await AgentSimulator.run(policy: privilegedPolicy.text, sequences: [sequence], protos: protos)
        let undeclared = try await AgentSimulator.run(policy: directory.policy.text, sequences: [sequence], protos: protos)
        for engine in AgentSimulator.engines {
            #expect(declared[engine]?.first == [true], "\(engine): the declared privileged container")
            #expect(undeclared[engine]?.first == [false], "\(engine): the same request for an unprivileged container")
        }
    }
}
