#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A kubeconfig file (`kind: Config`), as `kubectl` reads it.
public struct Kubeconfig: Decodable, Sendable {
    public struct NamedCluster: Decodable, Sendable {
        public var name: String
        public var cluster: Cluster
    }
    public struct Cluster: Decodable, Sendable {
        public var server: String
        public var certificateAuthority: String?
        public var certificateAuthorityData: String?
        public var insecureSkipTLSVerify: Bool?
        public var tlsServerName: String?

        enum CodingKeys: String, CodingKey {
            case server
            case certificateAuthority = "certificate-authority"
            case certificateAuthorityData = "certificate-authority-data"
            case insecureSkipTLSVerify = "insecure-skip-tls-verify"
            case tlsServerName = "tls-server-name"
        }
    }
    public struct NamedUser: Decodable, Sendable {
        public var name: String
        public var user: User
    }
    public struct User: Decodable, Sendable {
        public var token: String?
        public var tokenFile: String?
        public var clientCertificate: String?
        public var clientCertificateData: String?
        public var clientKey: String?
        public var clientKeyData: String?
        public var exec: ExecConfig?

        enum CodingKeys: String, CodingKey {
            case token, tokenFile, exec
            case clientCertificate = "client-certificate"
            case clientCertificateData = "client-certificate-data"
            case clientKey = "client-key"
            case clientKeyData = "client-key-data"
        }
    }
    public struct NamedContext: Decodable, Sendable {
        public var name: String
        public var context: Context
    }
    public struct Context: Decodable, Sendable {
        public var cluster: String
        public var user: String?
        public var namespace: String?
    }

    public var clusters: [NamedCluster]
    public var users: [NamedUser]
    public var contexts: [NamedContext]
    public var currentContext: String?
    /// The folder relative paths in this file are resolved against.
    public var baseDirectory: String = ""

    enum CodingKeys: String, CodingKey {
        case clusters, users, contexts
        case currentContext = "current-context"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        clusters = try container.decodeIfPresent([NamedCluster].self, forKey: .clusters) ?? []
        users = try container.decodeIfPresent([NamedUser].self, forKey: .users) ?? []
        contexts = try container.decodeIfPresent([NamedContext].self, forKey: .contexts) ?? []
        currentContext = try container.decodeIfPresent(String.self, forKey: .currentContext)
    }

    public init(yaml: String, baseDirectory: String) throws {
        do {
            self = try YAMLDocuments.decode(Kubeconfig.self, from: yaml)
        } catch {
            throw KubeClientError.configuration("kubeconfig is not valid: \(error)")
        }
        self.baseDirectory = baseDirectory
        resolvePaths()
    }

    public init(contentsOf path: String) throws {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw KubeClientError.configuration("cannot read kubeconfig \(path)")
        }
        do {
            try self.init(yaml: text, baseDirectory: Self.directory(of: path))
        } catch KubeClientError.configuration(let message) {
            throw KubeClientError.configuration("\(path): \(message)")
        }
    }

    /// The folder part of a path, as `NSString.deletingLastPathComponent` gives it ("" for a bare name).
    static func directory(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed.removeLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "" }
        if slash == trimmed.startIndex { return "/" }
        var folder = trimmed[..<slash]
        while folder.count > 1, folder.hasSuffix("/") { folder.removeLast() }
        return String(folder)
    }

    /// Merges several files as `KUBECONFIG=a:b` does: the first file to define a name (or current-context) wins.
    public static func merged(paths: [String]) throws -> Kubeconfig {
        var result: Kubeconfig?
        for path in paths where !path.isEmpty {
            guard FileManager.default.fileExists(atPath: path) else { continue }
            let next = try Kubeconfig(contentsOf: path)
            guard var merged = result else {
                result = next
                continue
            }
            for cluster in next.clusters where !merged.clusters.contains(where: { $0.name == cluster.name }) {
                merged.clusters.append(cluster)
            }
            for user in next.users where !merged.users.contains(where: { $0.name == user.name }) {
                merged.users.append(user)
            }
            for context in next.contexts where !merged.contexts.contains(where: { $0.name == context.name }) {
                merged.contexts.append(context)
            }
            if merged.currentContext?.isEmpty ?? true { merged.currentContext = next.currentContext }
            result = merged
        }
        guard let result else {
            throw KubeClientError.configuration("none of the kubeconfig files exists: \(paths.joined(separator: ":"))")
        }
        return result
    }

    private mutating func resolvePaths() {
        let base = baseDirectory
        func absolute(_ path: String?) -> String? {
            guard let path, !path.isEmpty, !path.hasPrefix("/") else { return path }
            return base.isEmpty ? path : base + "/" + path
        }
        for index in clusters.indices {
            clusters[index].cluster.certificateAuthority = absolute(clusters[index].cluster.certificateAuthority)
        }
        for index in users.indices {
            users[index].user.clientCertificate = absolute(users[index].user.clientCertificate)
            users[index].user.clientKey = absolute(users[index].user.clientKey)
            users[index].user.tokenFile = absolute(users[index].user.tokenFile)
            if let command = users[index].user.exec?.command, command.contains("/") {
                users[index].user.exec?.command = absolute(command) ?? command
            }
        }
    }

    /// The client configuration for a context (the current one when `context` is nil).
    public func configuration(context name: String? = nil) throws -> ClientConfiguration {
        guard let contextName = name ?? currentContext, !contextName.isEmpty else {
            throw KubeClientError.configuration("kubeconfig has no current-context and none was given")
        }
        guard let context = contexts.first(where: { $0.name == contextName })?.context else {
            throw KubeClientError.configuration("context \"\(contextName)\" not found in kubeconfig")
        }
        guard let cluster = clusters.first(where: { $0.name == context.cluster })?.cluster else {
            throw KubeClientError.configuration("cluster \"\(context.cluster)\" of context \"\(contextName)\" not found")
        }
        let user = try context.user.map { userName in
            guard let user = users.first(where: { $0.name == userName })?.user else {
                throw KubeClientError.configuration("user \"\(userName)\" of context \"\(contextName)\" not found")
            }
            return user
        }

        guard let server = URL(string: cluster.server), server.host != nil else {
            throw KubeClientError.configuration("cluster \"\(context.cluster)\" has an invalid server URL")
        }
        var config = ClientConfiguration(server: server)
        config.namespace = context.namespace ?? "default"
        config.insecureSkipTLSVerify = cluster.insecureSkipTLSVerify ?? false
        config.tlsServerName = cluster.tlsServerName
        config.certificateAuthority = try Self.pem(data: cluster.certificateAuthorityData, file: cluster.certificateAuthority, what: "certificate-authority")
        if let user {
            config.clientCertificate = try Self.pem(data: user.clientCertificateData, file: user.clientCertificate, what: "client-certificate")
            config.clientKey = try Self.pem(data: user.clientKeyData, file: user.clientKey, what: "client-key")
            if (config.clientCertificate == nil) != (config.clientKey == nil) {
                throw KubeClientError.configuration("user \"\(context.user ?? "")\" has a client certificate without a key, or a key without a certificate")
            }
            if let token = user.token, !token.isEmpty {
                config.credentials = .token(token)
            } else if let file = user.tokenFile, !file.isEmpty {
                config.credentials = .tokenFile(file)
            } else if let exec = user.exec {
                config.credentials = .exec(exec)
            }
        }
        return config
    }

    private static func pem(data: String?, file: String?, what: String) throws -> [UInt8]? {
        if let data, !data.isEmpty {
            guard let decoded = Data(base64Encoded: data, options: .ignoreUnknownCharacters) else {
                throw KubeClientError.configuration("\(what)-data is not valid base64")
            }
            return Array(decoded)
        }
        if let file, !file.isEmpty {
            guard let contents = FileManager.default.contents(atPath: file) else {
                throw KubeClientError.configuration("cannot read \(what) file \(file)")
            }
            return Array(contents)
        }
        return nil
    }
}

/// A client-go exec credential plugin (`client.authentication.k8s.io/v1` or `v1beta1`).
public struct ExecConfig: Decodable, Sendable, Hashable {
    public struct EnvVar: Decodable, Sendable, Hashable {
        public var name: String
        public var value: String
    }
    public var apiVersion: String?
    public var command: String
    public var args: [String]?
    public var env: [EnvVar]?
}
