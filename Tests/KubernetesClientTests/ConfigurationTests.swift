import Foundation
import KubernetesClient
import Testing

@Suite struct ConfigurationTests {
    let directory: String = {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cwo-config-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try? "CA-BYTES".write(toFile: path + "/ca.pem", atomically: true, encoding: .utf8)
        return path
    }()

    func write(_ name: String, _ text: String) throws -> String {
        let path = directory + "/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    let kubeconfig = """
        apiVersion: v1
        kind: Config
        current-context: dev
        clusters:
        - name: c1
          cluster:
            server: https://[fd00::1]:6443
            certificate-authority: ca.pem
            tls-server-name: kubernetes
        - name: c2
          cluster:
            server: https://example.test:443
            insecure-skip-tls-verify: true
        users:
        - name: u1
          user:
            token: s3cr3t-token
        - name: u2
          user:
            tokenFile: token.txt
        - name: u3
          user:
            exec:
              apiVersion: client.authentication.k8s.io/v1
              command: get-token
              args: ["--x"]
        contexts:
        - name: dev
          context: {cluster: c1, user: u1, namespace: team-a}
        - name: ops
          context: {cluster: c2, user: u2}
        - name: broken
          context: {cluster: nope, user: u1}
        """

    @Test func readsTheCurrentContextAndResolvesRelativePaths() throws {
        let path = try write("config", kubeconfig)
        let config = try Kubeconfig(contentsOf: path).configuration()
        #expect(config.server.host == "fd00::1" || config.server.host == "[fd00::1]")
        #expect(config.namespace == "team-a")
        #expect(config.certificateAuthority == Array("CA-BYTES".utf8))
        #expect(config.tlsServerName == "kubernetes")
        #expect(!config.insecureSkipTLSVerify)
        guard case .token(let token) = config.credentials else { Issue.record("expected a token"); return }
        #expect(token == "s3cr3t-token")
    }

    @Test func aNamedContextWithInsecureTLSAndATokenFile() throws {
        let path = try write("config", kubeconfig)
        let config = try Kubeconfig(contentsOf: path).configuration(context: "ops")
        #expect(config.insecureSkipTLSVerify)
        #expect(config.namespace == "default")
        guard case .tokenFile(let file) = config.credentials else { Issue.record("expected a token file"); return }
        #expect(file == directory + "/token.txt")
    }

    @Test func tokensNeverAppearInDescriptions() throws {
        let path = try write("config", kubeconfig)
        let config = try Kubeconfig(contentsOf: path).configuration()
        #expect(!config.summary.contains("s3cr3t"))
        #expect(!"\(config.credentials)".contains("s3cr3t"))
    }

    @Test func errorsNameWhatIsMissing() throws {
        let path = try write("config", kubeconfig)
        let file = try Kubeconfig(contentsOf: path)
        #expect { try file.configuration(context: "broken") } throws: { "\($0)".contains("cluster \"nope\"") }
        #expect { try file.configuration(context: "absent") } throws: { "\($0)".contains("context \"absent\" not found") }
        let garbage = try write("garbage", "clusters: [1, 2")
        #expect(throws: KubeClientError.self) { try Kubeconfig(contentsOf: garbage) }
    }

    @Test func kubeconfigVariableMergesFilesFirstWins() throws {
        let first = try write("first", """
            current-context: one
            clusters: [{name: c, cluster: {server: "https://first:1"}}]
            users: [{name: u, user: {token: t1}}]
            contexts: [{name: one, context: {cluster: c, user: u}}]
            """)
        let second = try write("second", """
            current-context: two
            clusters: [{name: c, cluster: {server: "https://second:2"}}, {name: d, cluster: {server: "https://d:3"}}]
            contexts: [{name: two, context: {cluster: d, user: u}}]
            """)
        let config = try ClientConfiguration.load(environment: ["KUBECONFIG": "\(first):/does/not/exist:\(second)"])
        #expect(config.server.absoluteString == "https://first:1")
        let other = try ClientConfiguration.load(context: "two", environment: ["KUBECONFIG": "\(first):\(second)"])
        #expect(other.server.absoluteString == "https://d:3")
    }

    @Test func explicitPathWinsOverTheVariable() throws {
        let path = try write("config", kubeconfig)
        let config = try ClientConfiguration.load(kubeconfig: path, environment: ["KUBECONFIG": "/nope"])
        #expect(config.namespace == "team-a")
    }

    @Test func inClusterConfigurationBracketsIPv6AndReadsTheNamespace() throws {
        _ = try write("token", "sa-token\n")
        _ = try write("namespace", "cwo-system\n")
        _ = try write("ca.crt", "CA")
        let config = try ClientConfiguration.inCluster(
            environment: ["KUBERNETES_SERVICE_HOST": "fd00:10:96::1", "KUBERNETES_SERVICE_PORT": "443"], directory: directory)
        #expect(config.server.absoluteString == "https://[fd00:10:96::1]:443")
        #expect(config.namespace == "cwo-system")
        guard case .tokenFile(let file) = config.credentials else { Issue.record("expected token file"); return }
        #expect(file == directory + "/token")

        // Without KUBECONFIG, the in-cluster variables choose the service account (whose token must exist).
        #expect {
            try ClientConfiguration.load(environment: ["KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"])
        } throws: { "\($0)".contains("service-account token") }
    }
}

@Suite struct ErrorTests {
    @Test(arguments: [
        (404, "NotFound", KubeError.Reason.notFound), (409, "AlreadyExists", .alreadyExists), (409, "Conflict", .conflict),
        (410, "Expired", .gone), (422, "Invalid", .invalid), (403, "Forbidden", .forbidden), (401, "Unauthorized", .unauthorized),
        (429, "TooManyRequests", .tooManyRequests), (500, "InternalError", .serverError), (503, "ServiceUnavailable", .serviceUnavailable),
        (504, "Timeout", .timeout), (418, "", .other),
    ])
    func classifiesStatus(code: Int, reason: String, expected: KubeError.Reason) {
        let status = Status(status: "Failure", message: "m", reason: reason.isEmpty ? nil : reason, code: code)
        #expect(KubeError.classify(code: code, status: status, method: "GET", path: "/x", retryAfter: nil).reason == expected)
    }

    /// The 403 a restarted kube-apiserver gives while its admission has not yet rediscovered our kind
    /// (message as the server words it) passes by itself; a plain permission denial does not.
    @Test func transientServerStatesAreToldFromRequestErrors() throws {
        func error(_ code: Int, _ reason: String, _ message: String) -> KubeError {
            KubeError.classify(code: code, status: Status(status: "Failure", message: message, reason: reason, code: code), method: "PATCH", path: "/x", retryAfter: nil)
        }
        let unmapped = error(403, "Forbidden", #"deployments.apps "w21" is forbidden: cannot set blockOwnerDeletion in this case because cannot find RESTMapping for APIVersion cwo.dev/v1alpha1 Kind ConfidentialWorkload: no matches for kind "ConfidentialWorkload" in version "cwo.dev/v1alpha1""#)
        let denied = error(403, "Forbidden", #"deployments.apps "w21" is forbidden: User "cwo" cannot patch resource "deployments" in API group "apps""#)
        #expect(unmapped.isServerTransient && !denied.isServerTransient)
        #expect(error(503, "ServiceUnavailable", "m").isServerTransient && error(429, "TooManyRequests", "m").isServerTransient)
        #expect(!error(422, "Invalid", "m").isServerTransient && !error(409, "Conflict", "m").isServerTransient)
        #expect(KubeClientError.transport(method: "GET", path: "/x", underlying: "connection refused").isServerTransient)
        #expect(!KubeClientError.decoding(method: "GET", path: "/x", underlying: "bad").isServerTransient)
    }

    @Test func retryAfterComesFromDetailsWhenNoHeader() throws {
        let status = try JSONDecoder().decode(Status.self, from: Data(#"{"kind":"Status","code":429,"reason":"TooManyRequests","details":{"retryAfterSeconds":3}}"#.utf8))
        let error = KubeError.classify(code: 429, status: status, method: "GET", path: "/x", retryAfter: nil)
        #expect(error.retryAfter == .seconds(3))
    }
}

@Suite struct JSONValueTests {
    @Test func encodesWithoutNullsAndIntegersAsIntegers() throws {
        let meta = ObjectMeta(name: "a", labels: ["k": "v"])
        let text = String(decoding: try JSONCoding.encoder.encode(meta), as: UTF8.self)
        #expect(text == #"{"labels":{"k":"v"},"name":"a"}"#)
        let value: JSONValue = ["replicas": 3, "ratio": .number(0.5)]
        #expect(String(decoding: try JSONCoding.encoder.encode(value), as: UTF8.self) == #"{"ratio":0.5,"replicas":3}"#)
    }

    @Test func roundTripsUnknownFields() throws {
        let text = #"{"apiVersion":"v1","kind":"Thing","metadata":{"name":"x"},"spec":{"future":{"nested":[1,true,null,"s"]}}}"#
        let object = try JSONDecoder().decode(UntypedObject.self, from: Data(text.utf8))
        #expect(object.name == "x")
        let again = String(decoding: try JSONCoding.encoder.encode(object), as: UTF8.self)
        #expect(again == text)
    }
}

@Suite struct YAMLTests {
    @Test func scalarsResolveAsKubectlReadsThem() throws {
        let documents = try YAMLDocuments.parse("""
            a: true
            b: "true"
            c: 3
            d: "3"
            e: 1.5
            f: null
            g: 2026-01-01
            h: ~
            ---
            ---
            second: [x, 'y']
            """)
        #expect(documents.count == 2)
        #expect(documents[0] == ["a": true, "b": "true", "c": 3, "d": "3", "e": .number(1.5), "f": .null, "g": "2026-01-01", "h": .null])
        #expect(documents[1] == ["second": ["x", "y"]])
    }

    @Test func dumpQuotesStringsThatWouldReadAsOtherTypes() throws {
        let value: JSONValue = ["flag": "true", "number": "42", "real": true, "count": 42, "text": "plain", "unicode": "żółw 🐢"]
        let text = try YAMLDocuments.dump([value])
        #expect(try YAMLDocuments.parse(text) == [value])
        #expect(text.contains("'true'") && text.contains("'42'"))
    }

    @Test(arguments: ["{{{", "a: [1, 2", "key: *undefined", "- a\nb: c"])
    func invalidYAMLIsAnErrorWithAMessage(text: String) {
        #expect { try YAMLDocuments.parse(text) } throws: { !"\($0)".isEmpty }
    }
}
