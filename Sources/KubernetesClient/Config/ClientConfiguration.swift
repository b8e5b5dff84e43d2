#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import FoundationExtras

/// Everything needed to talk to one API server as one user.
public struct ClientConfiguration: Sendable {
    public enum Credentials: Sendable, CustomStringConvertible {
        case none
        case token(String)
        /// Re-read periodically: projected service-account tokens rotate.
        case tokenFile(String)
        case exec(ExecConfig)

        // Never print a token.
        public var description: String {
            switch self {
            case .none: "none"
            case .token: "token(redacted)"
            case .tokenFile(let path): "tokenFile(\(path))"
            case .exec(let exec): "exec(\(exec.command))"
            }
        }
    }

    public var server: URL
    public var namespace: String = "default"
    public var certificateAuthority: [UInt8]?
    public var clientCertificate: [UInt8]?
    public var clientKey: [UInt8]?
    public var insecureSkipTLSVerify = false
    public var tlsServerName: String?
    public var credentials: Credentials = .none
    public var userAgent = "cwo"
    /// Act as this user (and groups), as `kubectl --as` does; the server authorizes the impersonated identity.
    public var impersonateUser: String?
    public var impersonateGroups: [String] = []
    /// Timeout of a single non-watch request.
    public var requestTimeout: Duration = .seconds(30)
    /// How often a request is tried in all (429 and, where safe, 5xx and transport errors are retried).
    public var maxAttempts = 5
    /// The longest pause a request waits out itself before retrying (a 429's Retry-After, backoff);
    /// a longer Retry-After is thrown to the caller in the error.
    public var maxRetryWait: Duration = .seconds(5)
    /// Client-side rate limit; nil relies on the server's API Priority and Fairness (controller-runtime's default).
    public var qps: Double?
    public var burst: Int = 10
    /// Speak HTTP/2 to the API server when it offers it (ALPN), as client-go does; HTTP/1.1 otherwise.
    /// HTTP/1.1 is the default: a watch holds a connection of its own, and cwo's CPU converging 1 000
    /// workloads, as a share of the API server's in the same run, was 0.210 (0.203–0.219, five runs) against
    /// 0.247 (0.221–0.261) over HTTP/2, whose frame decoder copied each watch event's bytes as they
    /// arrived (a tenth of cwo's CPU under `perf`) and which set up a stream channel per request.
    public var http2 = false

    public init(server: URL) {
        self.server = server
    }

    /// Where the configuration came from, for the startup log line.
    public var summary: String {
        "server=\(server.absoluteString) namespace=\(namespace) credentials=\(credentials)"
            + (insecureSkipTLSVerify ? " insecure-skip-tls-verify=true" : "")
    }
}

extension ClientConfiguration {
    public static let serviceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"

    /// The configuration a pod gets from its service account.
    public static func inCluster(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        directory: String = serviceAccountDirectory
    ) throws -> ClientConfiguration {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty,
            let port = environment["KUBERNETES_SERVICE_PORT"], !port.isEmpty
        else {
            throw KubeClientError.configuration("not running in a cluster: KUBERNETES_SERVICE_HOST/PORT are not set")
        }
        // An IPv6 address needs brackets in a URL.
        let hostPart = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        guard let url = URL(string: "https://\(hostPart):\(port)") else {
            throw KubeClientError.configuration("invalid KUBERNETES_SERVICE_HOST/PORT: \(host) \(port)")
        }
        var config = ClientConfiguration(server: url)
        let tokenPath = directory + "/token"
        guard FileManager.default.isReadableFile(atPath: tokenPath) else {
            throw KubeClientError.configuration("service-account token \(tokenPath) is not readable")
        }
        config.credentials = .tokenFile(tokenPath)
        if let ca = FileManager.default.contents(atPath: directory + "/ca.crt") {
            config.certificateAuthority = Array(ca)
        }
        if let data = FileManager.default.contents(atPath: directory + "/namespace"),
            let namespace = String(data: data, encoding: .utf8)?.trimmingWhitespace(),
            !namespace.isEmpty
        {
            config.namespace = namespace
        }
        return config
    }

    /// controller-runtime's order: an explicit path, then `$KUBECONFIG` (several paths joined by `:`),
    /// then the in-cluster service account, then `~/.kube/config`.
    public static func load(
        kubeconfig explicitPath: String? = nil, context: String? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> ClientConfiguration {
        if let explicitPath, !explicitPath.isEmpty {
            return try Kubeconfig(contentsOf: explicitPath).configuration(context: context)
        }
        if let paths = environment["KUBECONFIG"], !paths.isEmpty {
            return try Kubeconfig.merged(paths: paths.split(separator: ":").map(String.init)).configuration(context: context)
        }
        if environment["KUBERNETES_SERVICE_HOST"] != nil {
            return try inCluster(environment: environment)
        }
        let home = environment["HOME"] ?? FileManager.default.homeDirectoryForCurrentUser.path
        let path = home + "/.kube/config"
        guard FileManager.default.fileExists(atPath: path) else {
            throw KubeClientError.configuration(
                "no Kubernetes configuration: pass --kubeconfig, set KUBECONFIG, run in a cluster, or create ~/.kube/config")
        }
        return try Kubeconfig(contentsOf: path).configuration(context: context)
    }
}
