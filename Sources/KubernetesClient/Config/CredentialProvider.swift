#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import FoundationExtras

/// Produces the `Authorization` header value, refreshing rotated tokens.
actor CredentialProvider {
    private let credentials: ClientConfiguration.Credentials
    private var cached: (value: String, expires: ContinuousClock.Instant)?
    /// client-go re-reads token files every minute; so do we.
    private let tokenFileRefresh: Duration = .seconds(60)

    init(_ credentials: ClientConfiguration.Credentials) {
        self.credentials = credentials
    }

    func authorization() throws -> String? {
        switch credentials {
        case .none:
            return nil
        case .token(let token):
            return "Bearer \(token)"
        case .tokenFile(let path):
            if let cached, cached.expires > .now { return cached.value }
            guard let data = FileManager.default.contents(atPath: path),
                let token = String(data: data, encoding: .utf8)?.trimmingWhitespace(),
                !token.isEmpty
            else {
                throw KubeClientError.configuration("cannot read token file \(path)")
            }
            let value = "Bearer \(token)"
            cached = (value, .now + tokenFileRefresh)
            return value
        case .exec(let exec):
            if let cached, cached.expires > .now { return cached.value }
            let (token, lifetime) = try Self.runExec(exec)
            let value = "Bearer \(token)"
            cached = (value, .now + lifetime)
            return value
        }
    }

    /// Forget a cached token (after a 401), so the next request reads or fetches a fresh one.
    func invalidate() { cached = nil }

    private struct ExecCredential: Decodable {
        struct Status: Decodable {
            var token: String?
            var expirationTimestamp: String?
        }
        var status: Status?
    }

    private static func runExec(_ exec: ExecConfig) throws -> (String, Duration) {
        var environment = ProcessInfo.processInfo.environment
        for variable in exec.env ?? [] { environment[variable.name] = variable.value }
        let apiVersion = exec.apiVersion ?? "client.authentication.k8s.io/v1"
        environment["KUBERNETES_EXEC_INFO"] =
            #"{"apiVersion":"\#(apiVersion)","kind":"ExecCredential","spec":{"interactive":false}}"#
        let result: ChildProcess.Result
        do {
            result = try ChildProcess.run([exec.command] + (exec.args ?? []), environment: environment, discardStandardError: true)
        } catch {
            throw KubeClientError.configuration("cannot run exec credential plugin \(exec.command): \(error)")
        }
        guard result.status == 0 else {
            throw KubeClientError.configuration(
                "exec credential plugin \(exec.command) exited with status \(result.status)")
        }
        let data = Data(result.output)
        guard let credential = try? JSONDecoder().decode(ExecCredential.self, from: data),
            let token = credential.status?.token, !token.isEmpty
        else {
            throw KubeClientError.configuration("exec credential plugin \(exec.command) returned no status.token")
        }
        var lifetime: Duration = .seconds(300)
        if let expiry = credential.status?.expirationTimestamp,
            let date = try? Date(expiry, strategy: .iso8601)
        {
            // Refresh a little before the plugin's expiry.
            lifetime = .seconds(max(0, date.timeIntervalSinceNow - 30))
        }
        return (token, lifetime)
    }
}
