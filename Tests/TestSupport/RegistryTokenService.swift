import Crypto
import Foundation
import NIOCore

/// A registry token service, as Docker Hub's auth.docker.io is one: it answers `GET /token?service=…&scope=…`
/// with a JWT (ES256, its certificate in `x5c`) granting the scope's actions to a client that gives the
/// right basic credentials, and 401 to any other. The registry (`auth: token`) trusts `certificateFile`.
final class RegistryTokenService: Sendable {
    static let issuer = "cwo-test-issuer"
    static let service = "cwo-test-registry"

    let port: Int
    let certificateFile: String
    private let key: P256.Signing.PrivateKey
    private let certificate: String
    private let credentials: (username: String, password: String)
    private let channel: any Channel

    var realm: String { "https://127.0.0.1:\(port)/token" }

    init(https: LoopbackHTTPS, username: String, password: String) async throws {
        certificateFile = "\(https.directory)/token-cert.pem"
        let keyFile = "\(https.directory)/token-key.pem"
        _ = try await runCommand([
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", "/CN=cwo-test-token", "-keyout", keyFile, "-out", certificateFile,
        ])
        key = try P256.Signing.PrivateKey(pemRepresentation: try String(contentsOfFile: keyFile, encoding: .utf8))
        // x5c holds the DER certificate in standard base64: the PEM's body.
        certificate = try String(contentsOfFile: certificateFile, encoding: .utf8).split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
        credentials = (username, password)
        let holder = LateBound<RegistryTokenService>()
        channel = try await https.listen(backlog: 16) { RecordingHandler { await holder.value?.answer($0) } }
        port = channel.localAddress?.port ?? 0
        holder.value = self
    }

    func stop() async {
        try? await channel.close()
    }

    func answer(_ request: RecordedRequest) async -> CannedAnswer {
        let expected = "Basic " + Data("\(credentials.username):\(credentials.password)".utf8).base64EncodedString()
        guard request.path == "/token", request.query["service"] == Self.service, request.headers["authorization"] == expected,
              let scope = request.query["scope"] else {
            return CannedAnswer(status: 401, body: #"{"details":"incorrect username or password"}"#)
        }
        // repository:<name>:<action>[,<action>]
        let parts = scope.split(separator: ":", maxSplits: 2).map(String.init)
        guard parts.count == 3, parts[0] == "repository" else { return CannedAnswer(status: 400, body: #"{"details":"bad scope"}"#) }
        let token = (try? self.token(repository: parts[1], actions: parts[2].split(separator: ",").map(String.init))) ?? ""
        return CannedAnswer(status: 200, body: #"{"token":"\#(token)"}"#)
    }

    /// A token granting `actions` on `repository` for five minutes.
    func token(repository: String, actions: [String]) throws -> String {
        let now = Int(Date().timeIntervalSince1970)
        let header: [String: Any] = ["alg": "ES256", "typ": "JWT", "x5c": [certificate]]
        let claims: [String: Any] = [
            "iss": Self.issuer, "sub": credentials.username, "aud": Self.service, "exp": now + 300, "nbf": now - 60, "iat": now,
            "jti": UUID().uuidString, "access": [["type": "repository", "name": repository, "actions": actions]],
        ]
        let signed = try Self.base64URL(JSONSerialization.data(withJSONObject: header)) + "." + Self.base64URL(JSONSerialization.data(withJSONObject: claims))
        let signature = try key.signature(for: Data(signed.utf8))
        return signed + "." + Self.base64URL(signature.rawRepresentation)
    }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
}
