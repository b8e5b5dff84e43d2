import CompressNIO
import ControllerRuntime
import Crypto
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import KubernetesClient
import NIOCore

/// The initdata document of a CoCo pod: the agent policy and the guest's attestation configuration,
/// written as TOML, measured into the TEE (its digest), and delivered gzipped and base64'd in a pod
/// annotation. The same inputs always give the same bytes, so the digest only moves when they do.
public struct InitData: Sendable, Hashable {
    /// The exact TOML bytes that are measured and gzipped.
    public let document: String
    public let algorithm: CoCoSettings.Algorithm
    /// `algorithm` over `document`.
    public let digest: [UInt8]
    /// Standard base64, padded, of the gzip of `document`: the annotation value.
    public let annotationValue: String

    public static let currentAnnotation = "io.katacontainers.config.hypervisor.cc_init_data"
    public static let legacyAnnotation = "io.katacontainers.config.runtime.cc_init_data"
    /// On the pod template: the digest, so running ReplicaSets tell which initdata they run.
    public static let digestAnnotation = "cwo.dev/initdata-digest"
    /// `[data]` entries cwo writes itself.
    static let reservedEntries: Set<String> = ["policy.rego", "aa.toml", "cdh.toml"]

    public var digestHex: String { digest.hexString }

    /// - Parameters:
    ///   - policy: the agent policy text (`policy.rego`).
    ///   - kbs: the key broker the guest attests to, with its CA certificate (PEM) when it has one.
    ///   - extra: more `[data]` entries.
    public init(policy: String, kbs: (url: String, certificate: String?)?, extra: [String: String], algorithm: CoCoSettings.Algorithm) {
        var data: [String: String] = extra
        data["policy.rego"] = policy
        if let kbs {
            data["aa.toml"] = Self.attestationAgentConfig(url: kbs.url, certificate: kbs.certificate)
            data["cdh.toml"] = Self.dataHubConfig(url: kbs.url, certificate: kbs.certificate)
        }
        var toml = "version = \"0.1.0\"\nalgorithm = \(TOML.string(algorithm.rawValue))\n\n[data]\n"
        for (name, content) in data.sorted(by: { $0.key < $1.key }) {
            toml += "\(TOML.string(name)) = \(TOML.string(content))\n"
        }
        document = toml
        self.algorithm = algorithm
        digest = Self.hash(Array(toml.utf8), algorithm)
        var buffer = ByteBuffer(string: toml)
        let gzipped = (try? buffer.compress(with: .gzip())) ?? ByteBuffer()
        annotationValue = Data(gzipped.readableBytesView).base64EncodedString()
    }

    private init(algorithm: CoCoSettings.Algorithm, digest: [UInt8]) {
        document = ""
        self.algorithm = algorithm
        self.digest = digest
        annotationValue = ""
    }

    /// Only the measurement (algorithm and digest): what a remembered desired state needs, without the
    /// ~50 KB document and its annotation.
    var measurementOnly: InitData { InitData(algorithm: algorithm, digest: digest) }

    /// The attestation agent's configuration: get tokens from this KBS.
    static func attestationAgentConfig(url: String, certificate: String?) -> String {
        var text = "[token_configs]\n[token_configs.kbs]\nurl = \(TOML.string(url))\n"
        if let certificate { text += "cert = \(TOML.string(certificate))\n" }
        return text
    }

    /// The confidential data hub's configuration: fetch resources from this KBS.
    static func dataHubConfig(url: String, certificate: String?) -> String {
        var text = "socket = 'unix:///run/confidential-containers/cdh.sock'\ncredentials = []\n\n[kbc]\nname = 'cc_kbc'\nurl = \(TOML.string(url))\n"
        if let certificate { text += "kbs_cert = \(TOML.string(certificate))\n" }
        return text
    }

    static func hash(_ bytes: [UInt8], _ algorithm: CoCoSettings.Algorithm) -> [UInt8] {
        switch algorithm {
        case .sha256: Array(SHA256.hash(data: bytes))
        case .sha384: Array(SHA384.hash(data: bytes))
        case .sha512: Array(SHA512.hash(data: bytes))
        }
    }

    /// What the TEE reports for this initdata, as a verifier must expect it.
    public func register(_ tee: TEE) -> (name: String, value: [UInt8])? {
        switch tee {
        case .snp:
            // HOST_DATA is 32 bytes: a longer digest is truncated.
            return ("HOST_DATA", Array(digest.prefix(32)))
        case .tdx:
            // MRCONFIGID is 48 bytes: a shorter digest is zero-padded, a longer one truncated.
            return ("MRCONFIGID", Array((digest + [UInt8](repeating: 0, count: 48)).prefix(48)))
        case .azSNPvTPM:
            // The digest extends vTPM PCR8 from zero.
            return ("PCR8", Array(SHA256.hash(data: [UInt8](repeating: 0, count: 32) + digest)))
        case .none:
            return nil
        }
    }

    /// How the KBS's attestation token names this digest (`init_data` claim): hex for snp and tdx,
    /// standard base64 for az-snp-vtpm.
    public func claim(_ tee: TEE) -> String {
        tee == .azSNPvTPM ? Data(digest).base64EncodedString() : digestHex
    }

}

/// TOML strings as the initdata document writes them.
enum TOML {
    /// A multi-line literal string when the text allows one (kept as written, readable), otherwise a
    /// basic string with escapes.
    static func string(_ text: String) -> String {
        let literalSafe = !text.contains("'''") && !text.hasSuffix("'")
            && text.unicodeScalars.allSatisfy { $0 == "\n" || $0 == "\t" || ($0.value >= 0x20 && $0.value != 0x7F) }
        if text.contains("\n") && literalSafe {
            // A newline right after the opening quotes is trimmed by TOML: the text starts on the next line.
            return "'''\n" + text + "'''"
        }
        // TOML's basic strings escape as JSON's do, and DEL besides.
        return JSONValue.string(text).compactJSON.replacing("\u{7F}", with: "\\u007F")
    }
}
