@testable import ConfidentialWorkload
import ControllerRuntime
import Foundation
import KubernetesClient
import Testing
import TestSupport

/// CoCo initdata, checked by its real readers: a TOML parser (Python's tomllib), gzip, base64 and the
/// coreutils digest commands, never by cwo's own code reading back what it wrote.
@Suite("CoCo initdata")
struct InitDataTests {
    static let policy = "package agent_policy\n\ndefault CreateContainerRequest := false\n# a 'quoted' \"word\" and a backslash \\ \n"
    static let certificate = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n"

    /// Writes `text` to a scratch file and returns its path.
    func scratch(_ text: String, _ name: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cwo-initdata-\(UUID().uuidString)-\(name)").path
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Python decodes the annotation value (base64, gunzip), parses the TOML and prints it as JSON.
    func decoded(_ initData: InitData) async throws -> (toml: String, parsed: JSONValue) {
        let value = try scratch(initData.annotationValue, "annotation")
        let script = """
            import base64, gzip, json, sys, tomllib
            raw = gzip.decompress(base64.b64decode(open(sys.argv[1]).read(), validate=True))
            open(sys.argv[1] + ".toml", "wb").write(raw)
            print(json.dumps(tomllib.loads(raw.decode("utf-8"))))
            """
        let output = try await runCommand(["python3", "-c", script, value])
        let toml = try String(contentsOfFile: value + ".toml", encoding: .utf8)
        return (toml, try JSONParser.parse(output))
    }

    @Test(arguments: CoCoSettings.Algorithm.allCases)
    func theDocumentParsesRoundTripsAndItsDigestIsTheCommands(_ algorithm: CoCoSettings.Algorithm) async throws {
        let initData = InitData(
            policy: Self.policy, kbs: ("https://kbs.example:8080", Self.certificate), extra: ["extra.txt": "it's ''' here", "control": "a\u{7F}b\u{01}c\r\n"], algorithm: algorithm)
        let (toml, parsed) = try await decoded(initData)
        #expect(toml == initData.document, "the gzip holds exactly the measured bytes")
        #expect(parsed["version"] == "0.1.0")
        #expect(parsed["algorithm"] == .string(algorithm.rawValue))
        #expect(parsed[path: ["data", "policy.rego"]] == .string(Self.policy))
        #expect(parsed[path: ["data", "extra.txt"]] == "it's ''' here")
        #expect(parsed[path: ["data", "control"]] == "a\u{7F}b\u{01}c\r\n")
        // The guest's own configurations are TOML too.
        let aa = try scratch(parsed[path: ["data", "aa.toml"]]?.stringValue ?? "", "aa")
        let cdh = try scratch(parsed[path: ["data", "cdh.toml"]]?.stringValue ?? "", "cdh")
        let configs = try JSONParser.parse(try await runCommand([
            "python3", "-c", "import json, sys, tomllib; print(json.dumps([tomllib.load(open(p, 'rb')) for p in sys.argv[1:]]))", aa, cdh,
        ]))
        #expect(configs.arrayValue?.first?[path: ["token_configs", "kbs", "url"]] == "https://kbs.example:8080")
        #expect(configs.arrayValue?.first?[path: ["token_configs", "kbs", "cert"]] == .string(Self.certificate))
        #expect(configs.arrayValue?.last?[path: ["kbc", "name"]] == "cc_kbc")
        #expect(configs.arrayValue?.last?[path: ["kbc", "kbs_cert"]] == .string(Self.certificate))

        let file = try scratch(initData.document, "document")
        let command = try await runCommand(["\(algorithm.rawValue)sum", file])
        #expect(String(command.prefix(while: { $0 != " " })) == initData.digestHex)
    }

    @Test func theSameInputsGiveTheSameBytes() {
        let first = InitData(policy: Self.policy, kbs: ("https://kbs", nil), extra: ["b": "2", "a": "1"], algorithm: .sha384)
        let second = InitData(policy: Self.policy, kbs: ("https://kbs", nil), extra: ["a": "1", "b": "2"], algorithm: .sha384)
        #expect(first == second)
        #expect(first.digestHex != InitData(policy: Self.policy + " ", kbs: ("https://kbs", nil), extra: [:], algorithm: .sha384).digestHex)
    }

    @Test func registersAreTruncatedOrPaddedAsTheTEEsDo() {
        let sha256 = InitData(policy: "p", kbs: nil, extra: [:], algorithm: .sha256)
        let sha384 = InitData(policy: "p", kbs: nil, extra: [:], algorithm: .sha384)
        let sha512 = InitData(policy: "p", kbs: nil, extra: [:], algorithm: .sha512)
        #expect(sha256.register(.snp)?.value == sha256.digest)
        #expect(sha384.register(.snp)?.value == Array(sha384.digest.prefix(32)))
        #expect(sha384.register(.tdx)?.value == sha384.digest)
        #expect(sha256.register(.tdx)?.value == sha256.digest + [UInt8](repeating: 0, count: 16))
        #expect(sha512.register(.tdx)?.value == Array(sha512.digest.prefix(48)))
        #expect(sha384.register(.snp)?.name == "HOST_DATA" && sha384.register(.tdx)?.name == "MRCONFIGID")
        #expect(sha384.register(TEE.none) == nil)
        #expect(sha384.claim(.snp) == sha384.digestHex)
        #expect(sha384.claim(.azSNPvTPM) == Data(sha384.digest).base64EncodedString())
    }

    @Test func pcr8IsTheExtendOfZeroWithTheDigest() async throws {
        let initData = InitData(policy: "p", kbs: nil, extra: [:], algorithm: .sha256)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("cwo-pcr8-\(UUID().uuidString)").path
        try Data([UInt8](repeating: 0, count: 32) + initData.digest).write(to: URL(fileURLWithPath: file))
        let expected = String(try await runCommand(["sha256sum", file]).prefix(64))
        #expect(initData.register(.azSNPvTPM).map { $0.value.hexString } == expected)
        #expect(initData.register(.azSNPvTPM)?.name == "PCR8")
    }

    // MARK: the platform in the workload

    static func coco(_ extra: [String: JSONValue] = [:], runtimeClass: String = "kata-qemu-snp") -> JSONValue {
        var spec: [String: JSONValue] = [
            "runtimeClassName": .string(runtimeClass), "replicas": 1,
            "template": ["spec": ["containers": [["name": "app", "image": "nginx:1.27", "resources": ["limits": ["memory": "256Mi"]]]]]],
        ]
        spec.merge(extra) { $1 }
        return .object(spec)
    }

    @Test func aCoCoWorkloadCarriesInitDataInsteadOfThePolicyAnnotation() throws {
        let state = try DesiredState.build(workload("web", spec: Self.coco(["kbs": ["url": "https://kbs.example:8080", "resources": [["path": "default/key/web"]]]]))).get()
        #expect(state.spec.platform == .coco)
        let annotations = state.deployment[path: ["spec", "template", "metadata", "annotations"]]
        #expect(annotations?[AgentPolicy.annotationKey] == nil, "CoCo's agent takes its policy from initdata")
        let initData = try #require(state.initData)
        #expect(annotations?[InitData.currentAnnotation] == .string(initData.annotationValue))
        #expect(annotations?[InitData.digestAnnotation] == .string(initData.digestHex))
        #expect(initData.document.contains(state.policy.text.split(separator: "\n").first.map(String.init) ?? "∅"))
        #expect(state.allowedHashes == [initData.digestHex])
        let containers = state.deployment[path: ["spec", "template", "spec", "containers"]]?.arrayValue ?? []
        let initContainers = state.deployment[path: ["spec", "template", "spec", "initContainers"]]?.arrayValue ?? []
        #expect((containers + initContainers).map { $0["name"] } == ["app"], "no SKR container on CoCo")
        #expect(state.conditions.contains { $0.type == ConditionType.initDataReady && $0.reason == "InitDataGenerated" })
        #expect(state.conditions.contains { $0.type == ConditionType.attestationConfigured && $0.reason == "AttestationInGuest" })
        // Legacy runtimes read the older annotation.
        let legacy = try DesiredState.build(workload("web", spec: Self.coco(["coco": ["initData": ["annotation": "Legacy"]]]))).get()
        #expect(legacy.deployment[path: ["spec", "template", "metadata", "annotations", InitData.legacyAnnotation]] != nil)
        #expect(legacy.deployment[path: ["spec", "template", "metadata", "annotations", InitData.currentAnnotation]] == nil)
    }

    @Test(arguments: [
        ("kata-cc", Platform.aks), ("kata-cc-isolation", .aks), ("kata-qemu-snp", .coco), ("kata-qemu-tdx", .coco),
        ("kata-qemu-coco-dev", .coco), ("kata-remote", .coco), ("kata-qemu-nvidia-gpu-snp", .coco), ("runc", .aks),
    ])
    func thePlatformFollowsTheRuntimeClass(_ runtimeClass: String, _ platform: Platform) {
        #expect(Platform.of(runtimeClass: runtimeClass) == platform)
    }

    @Test(arguments: [
        ("keyVault on CoCo", coco(["keyVault": ["name": "v", "keyName": "k", "clientID": "c"]]), "spec.keyVault"),
        ("maaEndpoint on CoCo", coco(["attestation": ["maaEndpoint": "sharedeus.eus.attest.azure.net"]]), "spec.attestation.maaEndpoint"),
        ("kbs on AKS", coco(["kbs": ["url": "https://kbs"]], runtimeClass: "kata-cc"), "spec.kbs"),
        ("coco on an explicit AKS", coco(["platform": "AKS", "coco": ["tee": "snp"]]), "spec.coco"),
        ("unknown TEE", coco(["platform": "CoCo"], runtimeClass: "my-kata"), "spec.coco.tee"),
        ("bad resource path", coco(["kbs": ["url": "https://kbs", "resources": [["path": "a/b"]]]]), "spec.kbs.resources[0].path"),
        ("reserved initdata entry", coco(["coco": ["initData": ["extraData": ["policy.rego": "x"]]]]), "spec.coco.initData.extraData[policy.rego]"),
    ])
    func fieldsOfTheOtherPlatformAreErrors(_ name: String, _ spec: JSONValue, _ field: String) {
        guard case .failure(let errors) = WorkloadSpec.parse(workload("web", spec: spec)) else {
            Issue.record("\(name): accepted")
            return
        }
        #expect(errors.errors.contains { $0.field == field }, "\(name): \(errors)")
    }
}

extension InitDataTests {
    /// gzip makes the limit far looser than on AKS, but incompressible content still hits it: said clearly.
    @Test func initDataOverTheAnnotationLimitIsRefusedNamingItsSize() throws {
        var generator = SystemRandomNumberGenerator()
        let noise = Data((0..<300_000).map { _ in UInt8.random(in: 0...255, using: &generator) }).base64EncodedString()
        let spec = Self.coco(["template": ["spec": ["containers": [[
            "name": "app", "image": "nginx:1.27", "env": [["name": "BLOB", "value": .string(noise)]], "resources": ["limits": ["memory": "256Mi"]],
        ]]]]])
        guard case .failure(let errors) = DesiredState.build(workload("web", spec: spec)) else {
            Issue.record("400 KB of incompressible literal env fitted in the annotation")
            return
        }
        #expect(errors.reason == Reason.initDataTooLarge)
        #expect(errors.errors.first?.message.contains("KiB as an annotation (gzipped)") == true, "\(errors)")
        // A compressible one of the same size fits: that is what gzip buys on CoCo.
        let repetitive = Self.coco(["template": ["spec": ["containers": [[
            "name": "app", "image": "nginx:1.27", "env": [["name": "BLOB", "value": .string(String(repeating: "a", count: noise.count))]],
            "resources": ["limits": ["memory": "256Mi"]],
        ]]]]])
        #expect(throws: Never.self) { try DesiredState.build(workload("web", spec: repetitive)).get() }
    }
}
