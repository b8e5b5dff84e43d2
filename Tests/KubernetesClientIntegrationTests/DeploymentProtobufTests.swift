import Foundation
@testable import KubernetesClient
import Testing
import TestSupport

/// Deployments are listed and watched as protobuf, their spec read through `ProtobufSchema`: the spec must
/// be what the JSON encoding of the same version says, for a pod template that uses most of what a pod
/// can say (every kind of field the schema has: strings, numbers, flags, lists of each, maps, quantities,
/// int-or-strings, inlined structs, empty messages that mean something).
@Suite("Deployments read as protobuf against the real control plane")
struct DeploymentProtobufTests {
    static let policy = String(repeating: "cG9saWN5", count: 6_000)

    static let template: JSONValue = [
        "metadata": ["labels": ["app": "sink"], "annotations": ["io.katacontainers.config.agent.policy": .string(policy), "empty": ""]],
        "spec": [
            "runtimeClassName": "kata-cc", "serviceAccountName": "runner", "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 0, "priority": 0, "enableServiceLinks": false, "hostname": "sink", "subdomain": "inner",
            "nodeSelector": ["kubernetes.azure.com/security-type": "ConfidentialVM"],
            "imagePullSecrets": [["name": "pull"]],
            "securityContext": [
                "runAsUser": 0, "runAsNonRoot": false, "fsGroup": 2000, "supplementalGroups": [1, 2, 300_000],
                "sysctls": [["name": "net.ipv4.ip_local_port_range", "value": "1024 65535"]], "seccompProfile": ["type": "RuntimeDefault"],
            ],
            "affinity": [
                "nodeAffinity": [
                    "requiredDuringSchedulingIgnoredDuringExecution": ["nodeSelectorTerms": [["matchExpressions": [["key": "zone", "operator": "In", "values": ["a", "b"]]]]]],
                    "preferredDuringSchedulingIgnoredDuringExecution": [["weight": 10, "preference": ["matchFields": [["key": "metadata.name", "operator": "NotIn", "values": ["n1"]]]]]],
                ],
                "podAntiAffinity": [
                    "preferredDuringSchedulingIgnoredDuringExecution": [["weight": 100, "podAffinityTerm": [
                        "topologyKey": "kubernetes.io/hostname", "namespaces": ["other"],
                        "labelSelector": ["matchLabels": ["app": "sink"], "matchExpressions": [["key": "tier", "operator": "Exists"]]],
                    ]]],
                ],
            ],
            "tolerations": [["key": "sev", "operator": "Equal", "value": "snp", "effect": "NoExecute", "tolerationSeconds": 30], ["operator": "Exists"]],
            "hostAliases": [["ip": "10.0.0.1", "hostnames": ["a.local", "b.local"]]],
            "dnsPolicy": "None",
            "dnsConfig": ["nameservers": ["1.1.1.1"], "searches": ["svc.local"], "options": [["name": "ndots", "value": "2"], ["name": "edns0"]]],
            "topologySpreadConstraints": [["maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": ["matchLabels": ["app": "sink"]]]],
            "readinessGates": [["conditionType": "example.com/ready"]],
            "volumes": [
                ["name": "scratch", "emptyDir": [:]],
                ["name": "memory", "emptyDir": ["medium": "Memory", "sizeLimit": "64Mi"]],
                ["name": "config", "configMap": ["name": "settings", "defaultMode": 0o440, "optional": true, "items": [["key": "a", "path": "a.txt", "mode": 0o400]]]],
                ["name": "secret", "secret": ["secretName": "creds", "defaultMode": 0o400]],
                ["name": "projected", "projected": ["defaultMode": 0o444, "sources": [
                    ["serviceAccountToken": ["audience": "api://AzureADTokenExchange", "expirationSeconds": 3600, "path": "token"]],
                    ["downwardAPI": ["items": [["path": "labels", "fieldRef": ["fieldPath": "metadata.labels"]],
                        ["path": "cpu", "resourceFieldRef": ["containerName": "app", "resource": "limits.cpu", "divisor": "1m"]]]]],
                    ["configMap": ["name": "ca", "items": [["key": "ca.crt", "path": "ca.crt"]]]],
                ]]],
                ["name": "host", "hostPath": ["path": "/var/run", "type": "Directory"]],
                ["name": "claim", "persistentVolumeClaim": ["claimName": "data", "readOnly": true]],
                ["name": "csi", "csi": ["driver": "secrets-store.csi.k8s.io", "readOnly": true, "volumeAttributes": ["secretProviderClass": "kv"]]],
                ["name": "downward", "downwardAPI": ["items": [["path": "name", "fieldRef": ["fieldPath": "metadata.name"]]]]],
            ],
            "initContainers": [["name": "init", "image": "busybox:1", "command": ["sh", "-c", "true"], "securityContext": ["privileged": false]]],
            "containers": [
                [
                    "name": "app", "image": "registry.example/app@sha256:0000000000000000000000000000000000000000000000000000000000000000",
                    "command": ["/app"], "args": ["--port", "8080", ""], "workingDir": "/srv", "stdin": true, "tty": false,
                    "ports": [["name": "http", "containerPort": 8080, "protocol": "TCP"], ["containerPort": 9090, "hostPort": 0]],
                    "envFrom": [["prefix": "CFG_", "configMapRef": ["name": "settings", "optional": true]], ["secretRef": ["name": "creds"]]],
                    "env": [
                        ["name": "PLAIN", "value": "1"], ["name": "EMPTY", "value": ""],
                        ["name": "POD", "valueFrom": ["fieldRef": ["apiVersion": "v1", "fieldPath": "metadata.name"]]],
                        ["name": "LIMIT", "valueFrom": ["resourceFieldRef": ["resource": "limits.memory", "divisor": "1Mi"]]],
                        ["name": "FROM_MAP", "valueFrom": ["configMapKeyRef": ["name": "settings", "key": "k", "optional": false]]],
                        ["name": "FROM_SECRET", "valueFrom": ["secretKeyRef": ["name": "creds", "key": "password"]]],
                    ],
                    "resources": ["limits": ["memory": "256Mi", "cpu": "1500m"], "requests": ["cpu": "0.5", "memory": "128Mi"]],
                    "volumeMounts": [["name": "config", "mountPath": "/etc/app", "readOnly": true, "subPath": "app"], ["name": "scratch", "mountPath": "/tmp"]],
                    "livenessProbe": ["httpGet": ["path": "/healthz", "port": "http", "scheme": "HTTP", "httpHeaders": [["name": "X-Probe", "value": "1"]]],
                        "initialDelaySeconds": 5, "periodSeconds": 10, "failureThreshold": 3],
                    "readinessProbe": ["tcpSocket": ["port": 8080], "timeoutSeconds": 2],
                    "startupProbe": ["exec": ["command": ["cat", "/tmp/ready"]]],
                    "lifecycle": ["preStop": ["exec": ["command": ["sleep", "1"]]], "postStart": ["httpGet": ["port": 8080, "host": "localhost"]]],
                    "securityContext": [
                        "runAsUser": 1000, "runAsGroup": 0, "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
                        "capabilities": ["add": ["NET_ADMIN"], "drop": ["ALL"]], "seLinuxOptions": ["level": "s0:c1,c2"],
                    ],
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                ],
                ["name": "skr", "image": "mcr.microsoft.com/aci/skr:2.7", "command": ["/skr.sh"], "imagePullPolicy": "Always", "securityContext": [:]],
            ],
        ],
    ]

    static let deployment: JSONValue = [
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": ["name": "sink", "labels": ["cwo.dev/managed-by": "cwo"], "annotations": ["cwo.dev/applied-intent": "abc"]],
        "spec": [
            "replicas": 0, "revisionHistoryLimit": 2, "progressDeadlineSeconds": 120, "minReadySeconds": 0, "paused": false,
            "selector": ["matchLabels": ["app": "sink"]],
            "strategy": ["type": "RollingUpdate", "rollingUpdate": ["maxSurge": "25%", "maxUnavailable": 1]],
            "template": template,
        ],
    ]

    /// The JSON encoding as protobuf has it: without the scalars that are zero (which protobuf writes and
    /// JSON leaves out when `omitempty`, and `ProtobufSchema` leaves out always) nor empty lists.
    static func withoutZeros(_ value: JSONValue) -> JSONValue? {
        switch value {
        case .null: return .none
        case .bool(let flag): return flag ? value : .none
        case .number(let number): return number == 0 ? .none : value
        case .string(let text): return text.isEmpty ? .none : value
        case .array(let items):
            // A list's items are values, not fields: only the fields inside them are left out.
            let kept = items.map { item in item.objectValue != nil ? withoutZeros(item) ?? item : item }
            return kept.isEmpty ? .none : .array(kept)
        case .object(let fields):
            // A map's empty strings are its values, in both encodings.
            return .object(Dictionary(uniqueKeysWithValues: fields.compactMap { key, value in
                (stringMaps.contains(key) ? value : withoutZeros(value)).map { (key, $0) }
            }))
        }
    }

    static let stringMaps: Set<String> = ["labels", "annotations", "matchLabels", "nodeSelector", "volumeAttributes"]

    /// The first path where `found` and `expected` differ (for the failure message).
    static func difference(_ found: JSONValue?, _ expected: JSONValue?, path: String = "") -> String? {
        if found == expected { return nil }
        if case .object(let a)? = found, case .object(let b)? = expected {
            for key in Set(a.keys).union(b.keys).sorted() {
                if let inner = difference(a[key], b[key], path: path + "." + key) { return inner }
            }
        }
        if case .array(let a)? = found, case .array(let b)? = expected, a.count == b.count {
            for (index, pair) in zip(a, b).enumerated() {
                if let inner = difference(pair.0, pair.1, path: path + "[\(index)]") { return inner }
            }
        }
        return "\(path): \(found.map { "\($0)" }?.prefix(200) ?? "absent") vs \(expected.map { "\($0)" }?.prefix(200) ?? "absent")"
    }

    @Test func aDeploymentReadAsProtobufHasTheSpecOfItsJSONEncoding() async throws {
        let client = try await TestCluster.shared().adminClient()
        defer { Task { try? await client.shutdown() } }
        let ns = try await client.makeTestNamespace("protobuf-deployment")
        let _: UntypedObject = try await client.create(.deployments, namespace: ns, try UntypedObject(Self.deployment))
        // One version read both ways (the controller manager writes the status meanwhile).
        let (protobuf, json) = try await eventually("protobuf and JSON reads of one version") { () -> (Deployment, Deployment)? in
            let protobuf: Deployment = try await client.get(.deployments, namespace: ns, name: "sink")
            let json: UntypedObject = try await client.get(.deployments, namespace: ns, name: "sink")
            let deployment = try json.raw.decode(as: Deployment.self)
            return protobuf.metadata.resourceVersion == deployment.metadata.resourceVersion ? (protobuf, deployment) : nil
        }
        #expect(!protobuf.specUnread)
        if protobuf.specUnread {
            let bytes = try await client.send(.GET, Resource.deployments.path(namespace: ns, name: "sink", subresource: nil), query: [], body: nil,
                contentType: "application/json", idempotent: true, accept: Deployment.protobufAccept)
            try bytes.withUnsafeReadableBytes { raw in
                try KubernetesProtobuf.unwrap(raw).message.forEach([2]) { spec in
                    do { _ = try ProtobufSchema.json(spec.message, message: "DeploymentSpec") } catch { Issue.record("\(error)") }
                }
            }
        }
        let expected = try #require(json.spec.flatMap(Self.withoutZeros))
        #expect(protobuf.spec == expected, "\(Self.difference(protobuf.spec, expected) ?? "")")
        // What the comparison with cwo's intent reads: the policy whole, the numbers the server defaulted.
        let policy = protobuf.spec?[path: ["template", "metadata", "annotations", "io.katacontainers.config.agent.policy"]]?.stringValue
        #expect(policy?.utf8.count == Self.policy.utf8.count && policy == Self.policy)
        #expect(protobuf.spec?[path: ["strategy", "rollingUpdate", "maxUnavailable"]] == 1)
        #expect(protobuf.spec?[path: ["strategy", "rollingUpdate", "maxSurge"]] == "25%")
        #expect(protobuf.spec?[path: ["template", "spec", "securityContext", "supplementalGroups"]] == [1, 2, 300_000])
        #expect(protobuf.spec?[path: ["template", "spec", "volumes"]]?.arrayValue?.first == ["name": "scratch", "emptyDir": [:]])
        var jsonMetadata = json.metadata
        jsonMetadata.managedFields = nil
        #expect(protobuf.metadata == jsonMetadata)
        #expect(protobuf.status == json.status)

        // A list and a watch read the same (the reflector's two paths).
        let listed: ObjectList<Deployment> = try await client.listAll(.deployments, namespace: ns)
        #expect(listed.items.map(\.spec) == [protobuf.spec])
    }
}
