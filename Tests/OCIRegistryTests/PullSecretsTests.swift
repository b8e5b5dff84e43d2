import Foundation
import Testing
@testable import OCIRegistry

/// Pull-secret data as `kubectl create secret docker-registry` and older clients write it, matched to
/// images as the kubelet matches them.
@Suite("Image pull secrets")
struct PullSecretsTests {
    static func secrets(_ json: String...) throws -> PullSecrets {
        var secrets = PullSecrets()
        for text in json { try secrets.add(secretData: Array(text.utf8)) }
        return secrets
    }

    static func user(_ secrets: PullSecrets, _ image: String) -> String? {
        ImageReference(image).flatMap(secrets.credentials(for:))?.username
    }

    @Test func dockerConfigJSONWithAuthOrUsernameAndPassword() throws {
        let auth = Data("robot:s3cr:et".utf8).base64EncodedString()
        let secrets = try Self.secrets(#"{"auths": {"registry.example:5000": {"auth": "\#(auth)"}, "ghcr.io": {"username": "octo", "password": "p"}}}"#)
        let credentials = try #require(ImageReference("registry.example:5000/team/app:v1").flatMap(secrets.credentials(for:)))
        // Only the first colon separates the user from the password.
        #expect(credentials == .init(username: "robot", password: "s3cr:et"))
        #expect(Self.user(secrets, "ghcr.io/org/tool@sha256:" + String(repeating: "a", count: 64)) == "octo")
        #expect(Self.user(secrets, "quay.io/org/tool:1") == nil, "another registry goes anonymously")
        #expect(Self.user(secrets, "registry.example/team/app:v1") == nil, "the port is part of the host")
    }

    @Test func dockerHubUnderAnyOfItsNames() throws {
        for key in ["https://index.docker.io/v1/", "docker.io", "index.docker.io", "registry-1.docker.io"] {
            let secrets = try Self.secrets(#"{"auths": {"\#(key)": {"username": "hub", "password": "p"}}}"#)
            #expect(Self.user(secrets, "nginx:1.27") == "hub", "\(key)")
            #expect(Self.user(secrets, "docker.io/org/app") == "hub", "\(key)")
        }
    }

    @Test func theLongestPathPrefixAndLeadingWildcardsMatch() throws {
        let secrets = try Self.secrets(#"{"auths": {"registry.example": {"username": "all", "password": "p"}, "registry.example/team": {"username": "team", "password": "p"}, "*.azurecr.io": {"username": "acr", "password": "p"}}}"#)
        #expect(Self.user(secrets, "registry.example/team/app") == "team")
        #expect(Self.user(secrets, "registry.example/teammate/app") == "all", "a prefix ends at a path separator")
        #expect(Self.user(secrets, "registry.example/other/app") == "all")
        #expect(Self.user(secrets, "contoso.azurecr.io/app") == "acr")
        #expect(Self.user(secrets, "a.contoso.azurecr.io/app") == nil, "the wildcard stands for one label")
    }

    @Test func theLegacyFormatAndTheOrderOfSecrets() throws {
        let secrets = try Self.secrets(
            #"{"registry.example": {"username": "first", "password": "p"}}"#,
            #"{"auths": {"registry.example": {"username": "second", "password": "p"}, "other.example": {"username": "other", "password": "p"}}}"#)
        #expect(Self.user(secrets, "registry.example/app") == "first", "the earlier secret wins")
        #expect(Self.user(secrets, "other.example/app") == "other")
    }

    @Test func badDataIsAnErrorThatDoesNotQuoteIt() throws {
        for text in ["not json", #"["a"]"#, #"{"auths": {"registry.example": {"auth": "bm9jb2xvbg=="}}}"#, #"{"auths": {"registry.example": {}}}"#] {
            var secrets = PullSecrets()
            #expect(throws: PullSecretError.self, "\(text)") { try secrets.add(secretData: Array(text.utf8)) }
        }
        do {
            var secrets = PullSecrets()
            try secrets.add(secretData: Array(#"{"auths": {"registry.example": {"auth": "c2VjcmV0"}}}"#.utf8))
        } catch {
            #expect(!"\(error)".contains("c2VjcmV0") && !"\(error)".contains("secret"))
        }
    }

    @Test func credentialsNeverPrintTheirPassword() {
        let credentials = RegistryClient.Credentials(username: "robot", password: "hunter2")
        #expect(!"\(credentials)".contains("hunter2"))
        #expect(!String(reflecting: credentials).contains("hunter2"))
        #expect(!"\(PullSecrets.Entry(host: "h", path: "", credentials: credentials))".contains("hunter2"))
    }
}
