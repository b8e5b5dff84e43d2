// swift-tools-version: 6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

/// What cwo's clients of outside services (Key Vault, a Trustee KBS, a registry) are built on.
let httpsClient: [Target.Dependency] = [
    "FoundationExtras",
    .product(name: "AsyncHTTPClient", package: "async-http-client"),
    .product(name: "NIOCore", package: "swift-nio"),
    .product(name: "NIOHTTP1", package: "swift-nio"),
    .product(name: "NIOSSL", package: "swift-nio-ssl"),
    .product(name: "Logging", package: "swift-log"),
]

let package = Package(
    name: "cwo",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "cwo", targets: ["cwo"]),
        .library(name: "AzureKeyVault", targets: ["AzureKeyVault"]),
        .library(name: "KubernetesClient", targets: ["KubernetesClient"]),
        .library(name: "ControllerRuntime", targets: ["ControllerRuntime"]),
        .library(name: "ConfidentialWorkload", targets: ["ConfidentialWorkload"]),
        .library(name: "TrusteeKBS", targets: ["TrusteeKBS"]),
        .library(name: "OCIRegistry", targets: ["OCIRegistry"]),
    ],
    dependencies: [
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.5.0"),
    ],
    targets: [
        // The system libyaml (Debian/Ubuntu: libyaml-dev) for kubeconfig and manifests. On Linux its static
        // archive is linked (see KubernetesClient), so the static-stdlib binary needs no libyaml at run time.
        .systemLibrary(name: "CLibYAML", providers: [.apt(["libyaml-dev"]), .brew(["libyaml"])]),
        // The few things cwo used from full Foundation that FoundationEssentials lacks (JSON as `Any`,
        // trimming, percent-encoding, running a program), so no target of `cwo` links ICU.
        .target(name: "FoundationExtras", swiftSettings: strict),
        // A Kubernetes REST client: configuration, typed errors, CRUD/patch/apply, streaming watch.
        .target(
            name: "KubernetesClient",
            dependencies: [
                "FoundationExtras",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                "CLibYAML",
            ],
            swiftSettings: strict,
            linkerSettings: [
                .linkedLibrary(":libyaml.a", .when(platforms: [.linux])),
                .linkedLibrary("yaml", .when(platforms: [.macOS])),
            ]
        ),
        // A small controller runtime: reflector + store, work queue, controller loop, leader election,
        // events, metrics and probes.
        .target(
            name: "ControllerRuntime",
            dependencies: [
                "KubernetesClient",
                "FoundationExtras",
                "CGlobalExecutorHook",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // Azure workload identity and the Key Vault calls cwo makes (endpoints always configurable).
        .target(
            name: "AzureKeyVault",
            dependencies: httpsClient,
            swiftSettings: strict
        ),
        // The Trustee KBS admin API (resource policy, resources) with EdDSA admin tokens.
        .target(
            name: "TrusteeKBS",
            dependencies: httpsClient + [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        // The OCI distribution API calls cwo makes: resolve a reference to its digest and image config, and
        // (AKS) hash its layers as the node's tardev snapshotter does (gunzip with the system zlib).
        .target(
            name: "OCIRegistry",
            dependencies: httpsClient + [.product(name: "Crypto", package: "swift-crypto"), .product(name: "CompressNIO", package: "compress-nio")],
            swiftSettings: strict
        ),
        // The ConfidentialWorkload domain: API types, validation, pure builders, key release, the reconciler.
        .target(
            name: "ConfidentialWorkload",
            dependencies: [
                "KubernetesClient",
                "FoundationExtras",
                "ControllerRuntime",
                "AzureKeyVault",
                "TrusteeKBS",
                "OCIRegistry",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                // gzip for CoCo initdata (the system zlib).
                .product(name: "CompressNIO", package: "compress-nio"),
            ],
            swiftSettings: strict
        ),
        // The thin CLI: run, render, policy.
        .executableTarget(
            name: "cwo",
            dependencies: [
                "KubernetesClient",
                "FoundationExtras",
                "ControllerRuntime",
                "ConfidentialWorkload",
                "AzureKeyVault",
                "TrusteeKBS",
                "OCIRegistry",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict,
            // Swift exports every symbol of an executable for dynamic lookup; cwo needs none of them, and
            // the 36k-entry table costs 1.5 MiB of resident memory at startup (measured, release build).
            // The functions `cwo run` executes (linker/cwo.order, measured by scripts/hot-functions) are laid
            // out together by lld: the kernel maps text a folio at a time, and spread over the whole binary
            // the few MB cwo runs kept most of its 20 MB of code resident. Relative relocations packed
            // (RELR, glibc 2.36+): the loader reads 16 KB of them instead of 2 MB.
            linkerSettings: [
                .unsafeFlags(
                    [
                        "-Xlinker", "--no-export-dynamic", "-use-ld=lld",
                        "-Xlinker", "--symbol-ordering-file=\(Context.packageDirectory)/linker/cwo.order", "-Xlinker", "--no-warn-symbol-ordering",
                        "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
                    ], .when(platforms: [.linux], configuration: .release))
            ]
        ),
        // Swift's hook for jobs of its global executor, reached at link time (the runtime is linked in
        // statically and does not export it): see ControllerRuntime's TasksOnEventLoops.
        .target(name: "CGlobalExecutorHook"),
        // Benchmarks against the real control plane (release build): scripts/bench.
        .executableTarget(
            name: "cwo-bench",
            dependencies: ["KubernetesClient", "ConfidentialWorkload", "TestSupport", "CMallocStats"],
            path: "Benchmarks/cwo-bench",
            swiftSettings: strict
        ),
        // glibc's heap statistics, for the benchmark's bytes-per-workload figures.
        .target(name: "CMallocStats", path: "Benchmarks/CMallocStats"),
        // Starts and stops the real control plane (scripts/control-plane) for integration tests, and
        // serves local HTTPS stand-ins for Key Vault and the identity endpoint, a Trustee KBS, and an API server;
        // runs the real reference registry (Debian's docker-registry) and pushes test images to it.
        .target(
            name: "TestSupport",
            dependencies: [
                "KubernetesClient",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Tests/TestSupport",
            swiftSettings: strict
        ),
        // The Foundation stand-ins against the full-Foundation calls they replace.
        .testTarget(name: "FoundationExtrasTests", dependencies: ["FoundationExtras"], swiftSettings: strict),
        .testTarget(name: "KubernetesClientTests", dependencies: ["KubernetesClient", "TestSupport", .product(name: "NIOCore", package: "swift-nio")], swiftSettings: strict),
        .testTarget(
            name: "KubernetesClientIntegrationTests",
            dependencies: ["KubernetesClient", "TestSupport"],
            swiftSettings: strict
        ),
        // The identity and Key Vault clients against the local HTTPS stand-in: exact requests, errors, retries.
        .testTarget(name: "AzureKeyVaultTests", dependencies: ["AzureKeyVault", "TestSupport"], swiftSettings: strict),
        // The KBS admin client against the local HTTPS stand-in: tokens, requests, errors.
        .testTarget(name: "TrusteeKBSTests", dependencies: ["TrusteeKBS", "TestSupport"], swiftSettings: strict),
        // The registry client against the real reference registry: digests, indexes, configs, auth, errors.
        .testTarget(name: "OCIRegistryTests", dependencies: ["OCIRegistry", "TestSupport", .product(name: "NIOCore", package: "swift-nio")], swiftSettings: strict),
        .testTarget(name: "ControllerRuntimeTests", dependencies: ["ControllerRuntime", "TestSupport"], swiftSettings: strict),
        .testTarget(
            name: "ConfidentialWorkloadTests",
            dependencies: ["ConfidentialWorkload", "ControllerRuntime", "OCIRegistry", "TestSupport"],
            exclude: ["Golden", "Corpus"],
            swiftSettings: strict
        ),
        // Faults, conflicts and security checks against the real control plane (some take a minute).
        .testTarget(
            name: "ReliabilityTests",
            dependencies: ["ConfidentialWorkload", "ControllerRuntime", "KubernetesClient", "TestSupport"],
            swiftSettings: strict
        ),
        // The operator end to end against the real control plane.
        .testTarget(
            name: "OperatorIntegrationTests",
            dependencies: ["ConfidentialWorkload", "ControllerRuntime", "KubernetesClient", "TestSupport", "AzureKeyVault", "TrusteeKBS", "OCIRegistry"],
            swiftSettings: strict
        ),
    ]
)
