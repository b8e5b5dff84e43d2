#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import FoundationExtras
import NIOCore
import NIOHTTP1

/// Azure workload identity, as the webhook injects it into a pod: a federated service-account token on
/// disk, exchanged at Microsoft Entra ID for an access token (client credentials with a client assertion).
public struct WorkloadIdentity: Sendable, Hashable {
    public var clientID: String
    public var tenantID: String
    public var federatedTokenFile: String
    /// `AZURE_AUTHORITY_HOST`, e.g. `https://login.microsoftonline.com/`.
    public var authorityHost: String

    public static let defaultAuthorityHost = "https://login.microsoftonline.com/"

    public init(clientID: String, tenantID: String, federatedTokenFile: String, authorityHost: String = Self.defaultAuthorityHost) {
        self.clientID = clientID
        self.tenantID = tenantID
        self.federatedTokenFile = federatedTokenFile
        self.authorityHost = authorityHost
    }

    /// From `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`, `AZURE_FEDERATED_TOKEN_FILE` and `AZURE_AUTHORITY_HOST`;
    /// nil with the names of what is missing when the pod has no workload identity.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Result<WorkloadIdentity, MissingIdentity> {
        let names = ["AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE"]
        let missing = names.filter { (environment[$0] ?? "").isEmpty }
        guard missing.isEmpty else { return .failure(MissingIdentity(variables: missing)) }
        let authority = environment["AZURE_AUTHORITY_HOST"].flatMap { $0.isEmpty ? nil : $0 } ?? defaultAuthorityHost
        return .success(WorkloadIdentity(
            clientID: environment["AZURE_CLIENT_ID"] ?? "", tenantID: environment["AZURE_TENANT_ID"] ?? "",
            federatedTokenFile: environment["AZURE_FEDERATED_TOKEN_FILE"] ?? "", authorityHost: authority))
    }

    public struct MissingIdentity: Error, Sendable, CustomStringConvertible {
        public var variables: [String]
        public var description: String {
            "cwo has no Azure workload identity (\(variables.joined(separator: ", ")) not set): label cwo's pod azure.workload.identity/use=true and annotate its service account with azure.workload.identity/client-id"
        }
    }

    /// `<authority>/<tenant>/oauth2/v2.0/token`
    public var tokenURL: String {
        var authority = authorityHost
        while authority.hasSuffix("/") { authority.removeLast() }
        return "\(authority)/\(tenantID)/oauth2/v2.0/token"
    }
}

/// Access tokens per scope, exchanged once and reused until shortly before they expire. Concurrent callers
/// share one exchange. The federated token file is re-read at every exchange, since the kubelet rotates it.
actor TokenCache {
    struct Token {
        var value: String
        var refreshAt: ContinuousClock.Instant
    }

    private let identity: WorkloadIdentity
    private let transport: AzureTransport
    private var tokens: [String: Token] = [:]
    private var inFlight: [String: Task<Token, any Error>] = [:]

    init(identity: WorkloadIdentity, transport: AzureTransport) {
        self.identity = identity
        self.transport = transport
    }

    func token(scope: String) async throws -> String {
        if let token = tokens[scope], ContinuousClock.now < token.refreshAt { return token.value }
        if let running = inFlight[scope] { return try await running.value.value }
        let task = Task { try await exchange(scope: scope) }
        inFlight[scope] = task
        defer { inFlight[scope] = nil }
        let token = try await task.value
        tokens[scope] = token
        return token.value
    }

    func invalidate(scope: String) {
        tokens[scope] = nil
    }

    private func exchange(scope: String) async throws -> Token {
        let label = "POST \(URL(string: identity.tokenURL)?.path ?? "/oauth2/v2.0/token")"
        let assertion: String
        do {
            assertion = try String(contentsOfFile: identity.federatedTokenFile, encoding: .utf8).trimmingWhitespace()
        } catch {
            throw AzureError(kind: .identity, message: "cannot read the federated token file \(identity.federatedTokenFile): \(FileError.reason(error))", request: label)
        }
        let form = [
            ("client_id", identity.clientID),
            ("scope", scope),
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", assertion),
        ].map { "\($0)=\(Self.formEncode($1))" }.joined(separator: "&")
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        headers.add(name: "Accept", value: "application/json")
        let response: AzureTransport.Response
        do {
            response = try await transport.send(.POST, url: identity.tokenURL, headers: headers, body: ByteBuffer(string: form), idempotent: true, label: label)
        } catch var error as AzureError where [.unauthorized, .rejected, .forbidden, .notFound].contains(error.kind) {
            // AADSTS errors: the federated credential, client ID or tenant is wrong. Not a Key Vault problem.
            error.kind = .identity
            throw error
        }
        struct Answer: Decodable {
            var access_token: String
            var expires_in: FlexibleInt?
        }
        guard let answer = try? JSONDecoder().decode(Answer.self, from: Data(response.body.readableBytesView)) else {
            throw AzureError(kind: .decoding, status: response.status, message: "the token response has no access_token", request: label)
        }
        let lifetime = Duration.seconds(answer.expires_in?.value ?? 300)
        // Refresh five minutes early, or at half the lifetime for short-lived tokens.
        let margin = min(.seconds(300), lifetime / 2)
        return Token(value: answer.access_token, refreshAt: ContinuousClock.now + lifetime - margin)
    }

    static func formEncode(_ text: String) -> String {
        text.percentEncoded(allowing: URLCharacters.unreserved)
    }
}

/// `expires_in` is a number from Entra ID but a string from some endpoints (the IMDS style).
struct FlexibleInt: Decodable {
    var value: Int
    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let number = try? container.decode(Int.self) {
            value = number
        } else {
            value = Int(try container.decode(String.self)) ?? 300
        }
    }
}
