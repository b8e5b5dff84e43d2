import AzureKeyVault
import Foundation
import Testing
import TestSupport

/// The identity and Key Vault clients against the local HTTPS stand-in: the exact requests they send,
/// how each documented error is classified, and what is retried.
@Suite("Key Vault client")
struct KeyVaultClientTests {
    static let policy = #"{"version":"1.0.0","anyOf":[{"authority":"https://maa.example","allOf":[{"claim":"x-ms-sevsnpvm-hostdata","equals":"aa"}]}]}"#

    static func client(_ fake: FakeAzure, tokenFile: String? = nil, configure: (inout AzureOptions) -> Void = { _ in }) throws -> KeyVaultClient {
        let identity = WorkloadIdentity(
            clientID: fake.clientID, tenantID: fake.tenantID, federatedTokenFile: try tokenFile ?? fake.writeFederatedTokenFile(), authorityHost: fake.url + "/")
        var options = AzureOptions(additionalCAFile: fake.caFile)
        // The stand-in answers from Swift's thread pool, which the test run's first half minute keeps busy
        // (as KBSAdminClientTests says): what is sent and answered is checked here, not how fast.
        options.requestTimeout = .seconds(120)
        configure(&options)
        return try KeyVaultClient(identity: identity, options: options)
    }

    @Test func theFederatedTokenIsExchangedOnceAndSentAsBearer() async throws {
        let fake = try await FakeAzure.start()
        let client = try Self.client(fake)
        fake.setKey("app-key", policy: Self.policy)
        let first = try #require(try await client.getKey(vault: fake.url, name: "app-key"))
        _ = try await client.getKey(vault: fake.url, name: "app-key")
        try await client.shutdown()
        await fake.stop()

        let requests = fake.requests
        #expect(requests.map(\.description) == ["POST /\(fake.tenantID)/oauth2/v2.0/token", "GET /keys/app-key", "GET /keys/app-key"])
        let form = requests[0].form
        #expect(form["grant_type"] == "client_credentials")
        #expect(form["client_id"] == fake.clientID)
        #expect(form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        #expect(form["client_assertion"] == fake.federatedToken)
        // A vault on any other host is assumed to be Azure public Key Vault's audience.
        #expect(form["scope"] == "https://vault.azure.net/.default")
        #expect(requests[0].headers["content-type"] == "application/x-www-form-urlencoded")
        for request in requests.dropFirst() {
            #expect(request.query["api-version"] == "7.4")
            #expect(request.headers["authorization"]?.hasPrefix("Bearer access-") == true)
        }
        #expect(first.release_policy?.policy.map { String(decoding: $0, as: UTF8.self) } == Self.policy)
        #expect(first.version.count == 32)
        #expect(first.attributes?.exportable == true)
    }

    @Test func aMissingKeyIsNilAndCreateSendsAnExportableKeyWithItsPolicy() async throws {
        let fake = try await FakeAzure.start()
        let client = try Self.client(fake)
        #expect(try await client.getKey(vault: fake.url, name: "new-key") == nil)
        let created = try await client.createKey(
            vault: fake.url, name: "new-key",
            parameters: KeyCreateParameters(keyType: "RSA-HSM", size: 3072, releasePolicy: KeyReleasePolicy(policy: Data(Self.policy.utf8))))
        try await client.shutdown()
        await fake.stop()

        let create = try #require(fake.requests.first { $0.method == "POST" && $0.path == "/keys/new-key/create" })
        let body = try #require(create.json)
        #expect(body["kty"] as? String == "RSA-HSM")
        #expect(body["key_size"] as? Int == 3072)
        #expect(body["key_ops"] as? [String] == ["wrapKey", "unwrapKey", "encrypt", "decrypt"])
        #expect((body["attributes"] as? [String: Any])?["exportable"] as? Bool == true)
        let release = try #require(body["release_policy"] as? [String: Any])
        #expect(release["contentType"] as? String == "application/json; charset=utf-8")
        #expect(release["immutable"] as? Bool == false)
        // base64url without padding, as the grammar and SKR use.
        let data = try #require(release["data"] as? String)
        #expect(!data.contains("=") && !data.contains("+") && !data.contains("/"))
        #expect(Base64URL.decode(data).map { String(decoding: $0, as: UTF8.self) } == Self.policy)
        #expect(created.version == fake.key("new-key")?.versions.last)
        #expect(fake.releaseHashes("new-key") == ["aa"])
    }

    @Test func anUpdateReplacesTheReleasePolicyOfTheVersion() async throws {
        let fake = try await FakeAzure.start()
        let client = try Self.client(fake)
        fake.setKey("app-key", policy: Self.policy)
        let version = try #require(fake.key("app-key")?.versions.last)
        let replacement = Self.policy.replacingOccurrences(of: "\"aa\"", with: "\"bb\"")
        _ = try await client.updateReleasePolicy(vault: fake.url, name: "app-key", version: version, policy: KeyReleasePolicy(policy: Data(replacement.utf8)))
        try await client.shutdown()
        await fake.stop()
        let patch = try #require(fake.requests.last)
        #expect(patch.method == "PATCH" && patch.path == "/keys/app-key/\(version)")
        #expect(Set((patch.json ?? [:]).keys) == ["release_policy"])
        #expect(fake.releaseHashes("app-key") == ["bb"])
    }

    @Test func eachDocumentedErrorIsClassified() async throws {
        let fake = try await FakeAzure.start()
        let client = try Self.client(fake) { $0.maxAttempts = 1 }
        fake.setKey("app-key", policy: Self.policy, immutable: true)
        let version = try #require(fake.key("app-key")?.versions.last)
        func kind(_ body: () async throws -> Void) async -> AzureError? {
            do {
                try await body()
                return nil
            } catch {
                return error as? AzureError
            }
        }
        fake.fail("GET", "/keys/app-key", status: 403, code: "Forbidden")
        let forbidden = await kind { _ = try await client.getKey(vault: fake.url, name: "app-key") }
        #expect(forbidden?.kind == .forbidden && forbidden?.status == 403 && forbidden?.code == "Forbidden")
        #expect(forbidden?.description.contains("GET /keys/app-key: 403 Forbidden") == true)

        let immutable = await kind {
            _ = try await client.updateReleasePolicy(vault: fake.url, name: "app-key", version: version, policy: KeyReleasePolicy(policy: Data(Self.policy.utf8)))
        }
        #expect(immutable?.kind == .rejected && immutable?.code == "BadParameter")

        fake.markDeleted("gone")
        let conflict = await kind {
            _ = try await client.createKey(vault: fake.url, name: "gone", parameters: KeyCreateParameters(keyType: "RSA", size: 2048, releasePolicy: KeyReleasePolicy(policy: Data(Self.policy.utf8))))
        }
        #expect(conflict?.kind == .conflict && conflict?.status == 409)

        fake.fail("GET", "/keys/", status: 429, code: "Throttled", retryAfter: 30)
        let throttled = await kind { _ = try await client.getKey(vault: fake.url, name: "app-key") }
        #expect(throttled?.kind == .throttled && throttled?.retryAfter == .seconds(30))
        try await client.shutdown()
        await fake.stop()
    }

    @Test func throttlingIsWaitedOutForAsLongAsRetryAfterSays() async throws {
        let fake = try await FakeAzure.start()
        let client = try Self.client(fake)
        fake.setKey("app-key", policy: Self.policy)
        fake.fail("GET", "/keys/app-key", status: 429, code: "Throttled", times: 1, retryAfter: 1)
        let start = ContinuousClock.now
        #expect(try await client.getKey(vault: fake.url, name: "app-key") != nil)
        let waited = ContinuousClock.now - start
        // A lower bound only: the client must not come back before the server said it may.
        #expect(waited >= .milliseconds(950), "came back after \(waited)")
        #expect(fake.requests.filter { $0.path == "/keys/app-key" }.count == 2)

        // A Retry-After longer than the client waits inside one call is returned to the caller.
        fake.fail("GET", "/keys/app-key", status: 429, code: "Throttled", times: 1, retryAfter: 120)
        await #expect(throws: AzureError.self) { _ = try await client.getKey(vault: fake.url, name: "app-key") }
        try await client.shutdown()
        await fake.stop()
    }

    @Test func serverErrorsAreRetriedOnlyWhereRetryingIsSafe() async throws {
        let fake = try await FakeAzure.start()
        let client = try Self.client(fake)
        fake.setKey("app-key", policy: Self.policy)
        fake.fail("GET", "/keys/app-key", status: 503, code: "ServiceUnavailable", times: 2)
        #expect(try await client.getKey(vault: fake.url, name: "app-key") != nil)
        #expect(fake.requests.filter { $0.method == "GET" }.count == 3)

        // A create that failed with 500 may have happened: it is not repeated.
        fake.fail("POST", "/create", status: 500, code: "InternalError", times: 1)
        await #expect(throws: AzureError.self) {
            _ = try await client.createKey(vault: fake.url, name: "other", parameters: KeyCreateParameters(keyType: "RSA", size: 2048, releasePolicy: KeyReleasePolicy(policy: Data(Self.policy.utf8))))
        }
        #expect(fake.requests.filter { $0.method == "POST" && $0.path.hasSuffix("/create") }.count == 1)
        try await client.shutdown()
        await fake.stop()
    }

    @Test func aRefusedTokenIsExchangedAgainOnce() async throws {
        let fake = try await FakeAzure.start()
        let client = try Self.client(fake)
        fake.setKey("app-key", policy: Self.policy)
        _ = try await client.getKey(vault: fake.url, name: "app-key")
        fake.revokeTokens()
        #expect(try await client.getKey(vault: fake.url, name: "app-key") != nil)
        try await client.shutdown()
        await fake.stop()
        #expect(fake.requests.map { $0.method + " " + ($0.path.hasSuffix("token") ? "token" : $0.path) } == [
            "POST token", "GET /keys/app-key", "GET /keys/app-key", "POST token", "GET /keys/app-key",
        ])
    }

    @Test func aFailedTokenExchangeIsAnIdentityErrorThatNeverShowsTheAssertion() async throws {
        let fake = try await FakeAzure.start()
        let wrongFile = FileManager.default.temporaryDirectory.appendingPathComponent("cwo-wrong-token-\(UUID().uuidString)").path
        try Data("not-the-federated-token".utf8).write(to: URL(fileURLWithPath: wrongFile))
        defer { try? FileManager.default.removeItem(atPath: wrongFile) }
        let client = try Self.client(fake, tokenFile: wrongFile)
        do {
            _ = try await client.getKey(vault: fake.url, name: "app-key")
            Issue.record("the exchange succeeded with a wrong assertion")
        } catch let error as AzureError {
            #expect(error.kind == .identity)
            #expect(error.code == "invalid_client")
            #expect(error.description.contains("AADSTS70021"))
            #expect(!error.description.contains("not-the-federated-token"))
        }
        // No Key Vault request is made without a token.
        #expect(fake.requests.allSatisfy { !$0.path.hasPrefix("/keys") })

        let missing = try KeyVaultClient(
            identity: WorkloadIdentity(clientID: fake.clientID, tenantID: fake.tenantID, federatedTokenFile: "/nonexistent/token", authorityHost: fake.url),
            options: AzureOptions(additionalCAFile: fake.caFile))
        await #expect(throws: AzureError.self) { _ = try await missing.getKey(vault: fake.url, name: "app-key") }
        try await client.shutdown()
        try await missing.shutdown()
        await fake.stop()
    }

    @Test func anUntrustedServerIsRefused() async throws {
        let fake = try await FakeAzure.start()
        // Without the test CA, the self-signed certificate must fail verification.
        let identity = WorkloadIdentity(clientID: fake.clientID, tenantID: fake.tenantID, federatedTokenFile: try fake.writeFederatedTokenFile(), authorityHost: fake.url)
        var options = AzureOptions()
        options.maxAttempts = 1
        let client = try KeyVaultClient(identity: identity, options: options)
        await #expect(throws: AzureError.self) { _ = try await client.getKey(vault: fake.url, name: "app-key") }
        #expect(fake.requests.isEmpty)
        try await client.shutdown()
        await fake.stop()
    }

    @Test func theAudienceFollowsTheVaultsCloud() {
        #expect(KeyVaultClient.scope(forVault: "https://myvault.vault.azure.net") == "https://vault.azure.net/.default")
        #expect(KeyVaultClient.scope(forVault: "https://myhsm.managedhsm.azure.net/") == "https://managedhsm.azure.net/.default")
        #expect(KeyVaultClient.scope(forVault: "https://myvault.vault.azure.cn") == "https://vault.azure.cn/.default")
        #expect(KeyVaultClient.scope(forVault: "https://myvault.vault.usgovcloudapi.net") == "https://vault.usgovcloudapi.net/.default")
    }

    @Test func theIdentityComesFromTheWebhooksVariables() {
        let full = ["AZURE_CLIENT_ID": "c", "AZURE_TENANT_ID": "t", "AZURE_FEDERATED_TOKEN_FILE": "/var/run/secrets/azure/tokens/azure-identity-token"]
        let identity = try? WorkloadIdentity.fromEnvironment(full).get()
        #expect(identity?.tokenURL == "https://login.microsoftonline.com/t/oauth2/v2.0/token")
        var china = full
        china["AZURE_AUTHORITY_HOST"] = "https://login.chinacloudapi.cn/"
        #expect((try? WorkloadIdentity.fromEnvironment(china).get())?.tokenURL == "https://login.chinacloudapi.cn/t/oauth2/v2.0/token")
        guard case .failure(let missing) = WorkloadIdentity.fromEnvironment(["AZURE_CLIENT_ID": "c"]) else {
            Issue.record("an incomplete identity was accepted")
            return
        }
        #expect(missing.variables == ["AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE"])
    }
}
