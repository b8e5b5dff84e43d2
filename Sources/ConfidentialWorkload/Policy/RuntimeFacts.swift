import KubernetesClient

/// What containerd and the Kata runtime put into every agent request of a pod, whatever its template
/// says: the mounts, paths, capabilities and names the generated policy expects besides the template's.
enum RuntimeFacts {
    /// The OCI runtime-spec version Kata sends.
    static let ociVersion = "1.1.0"

    /// containerd's default capabilities (all three of bounding, effective and permitted).
    static let defaultCapabilities = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
        "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
    ]

    /// Every capability the guest kernel knows: what a privileged container gets.
    static let allCapabilities = defaultCapabilities + [
        "CAP_DAC_READ_SEARCH", "CAP_LINUX_IMMUTABLE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
        "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_LEASE", "CAP_AUDIT_CONTROL", "CAP_MAC_OVERRIDE",
        "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
        "CAP_CHECKPOINT_RESTORE",
    ]

    /// Sysctls containerd sets in every pod; the template's `securityContext.sysctls` add to them.
    static let sysctls: [String: String] = ["net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range": "0 2147483647"]

    /// The pause container's process, from its image.
    static let pauseArgs = ["/pause"]
    /// The pause image's own environment.
    static let pauseEnv = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]

    /// Pause images of the registries Kubernetes distributions pull them from, as the guest-pull storage names them.
    static let pauseImageSource = #"^((registry\.k8s\.io|k8s\.gcr\.io|mcr\.microsoft\.com/oss/kubernetes)/)?pause(:[A-Za-z0-9._-]+)?(@sha256:[0-9a-f]{64})?$"#

    /// Files the runtime copies into the guest for a container's bind mount: `<bundle>-<16 random>-<last
    /// component of the mount's destination>`, as a pattern over the mount's source.
    static let copiedFileParent = #"/run/kata-containers/shared/containers/(passthrough/)?(watchable/)?"#
    static func copiedFile(for destination: String) -> String {
        let name = destination.split(separator: "/").last.map(String.init) ?? destination
        return "^" + copiedFileParent + "$(bundle-id)-[a-z0-9]{16}-" + escape(name) + "$"
    }

    static func copiedMount(_ destination: String, options: [String]) -> JSONValue {
        mount(destination, type: "bind", source: copiedFile(for: destination), options: options)
    }

    /// A copied-in file's bind mount (`rbind`, `rprivate`, then `ro` or `rw`): those of the files every
    /// container has (hostname, DNS, termination log, tokens) are written once, the rest when asked for.
    static func copiedMount(_ destination: String, readOnly: Bool) -> JSONValue {
        if let known = commonCopiedMounts[destination] { return readOnly ? known.readOnly : known.readWrite }
        return copiedMount(destination, options: ["rbind", "rprivate", readOnly ? "ro" : "rw"])
    }

    private static let commonCopiedMounts: [String: (readOnly: JSONValue, readWrite: JSONValue)] = Dictionary(uniqueKeysWithValues:
        ["/etc/hostname", "/etc/resolv.conf", "/dev/termination-log", "/var/run/secrets/kubernetes.io/serviceaccount",
         "/var/run/secrets/azure/tokens"].map { destination in
            (destination, (copiedMount(destination, options: ["rbind", "rprivate", "ro"]), copiedMount(destination, options: ["rbind", "rprivate", "rw"])))
        })

    /// Mounts every container gets from the runtime (kernel filesystems and /dev/shm).
    static func systemMounts(privileged: Bool) -> [JSONValue] {
        let kernelOptions = ["nosuid", "noexec", "nodev"]
        return [
            mount("/proc", type: "proc", source: "^proc$", options: kernelOptions),
            mount("/dev", type: "tmpfs", source: "^tmpfs$", options: ["nosuid", "strictatime", "mode=755", "size=65536k"]),
            mount("/dev/pts", type: "devpts", source: "^devpts$", options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
            mount("/dev/mqueue", type: "mqueue", source: "^mqueue$", options: kernelOptions),
            mount("/sys", type: "sysfs", source: "^sysfs$", options: kernelOptions + [privileged ? "rw" : "ro"]),
            mount("/dev/shm", type: "bind", source: "^/run/kata-containers/sandbox/shm$", options: ["rbind"]),
        ]
    }

    /// The runtime's mounts of a pause container, of a container, of a privileged container.
    static let mounts: JSONValue = {
        let readWrite = ["rbind", "rprivate", "rw"]
        let container = { (privileged: Bool) in
            systemMounts(privileged: privileged) + [
                mount("/sys/fs/cgroup", type: "cgroup", source: "^cgroup$", options: ["nosuid", "noexec", "nodev", "relatime", privileged ? "rw" : "ro"]),
                copiedMount("/etc/hosts", options: readWrite),
            ]
        }
        return [
            "sandbox": .array(systemMounts(privileged: false) + [
                copiedMount("/etc/resolv.conf", options: ["rbind", "ro", "nosuid", "nodev", "noexec"]),
            ]),
            "container": .array(container(false)),
            "privileged": .array(container(true)),
        ]
    }()

    static func mount(_ destination: String, type: String, source: String, options: [String]) -> JSONValue {
        ["destination": .string(destination), "type_": .string(type), "source": .string(source), "options": strings(options)]
    }

    /// The facts every rule shares, `policy_data.runtime`.
    static let policyData: JSONValue = [
        "oci_version": .string(ociVersion),
        "bundle_parent": "/run/containerd/io.containerd.runtime.v2.task/k8s.io",
        "netns_path": #"^/var/run/netns/cni-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"#,
        "mounts": mounts,
        "namespaces": strings(["ipc", "uts", "mount"]),
        // containerd's default profile where the node has AppArmor, none where it has not.
        "apparmor_profiles": strings(["", "cri-containerd.apparmor.d"]),
        // containerd's for unprivileged containers (a read-only path may come masked instead: stricter).
        "masked_paths": strings([
            "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
            "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
        ]),
        "readonly_paths": strings(["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]),
        // Newer guest kernels add these to the cgroup2 mount.
        "cgroup_extra_options": strings(["nsdelegate", "memory_recursiveprot"]),
        "block_mount_parent": "/run/kata-containers/sandbox/storage/",
        "copied_file": .string(copiedFileParent + "[a-z0-9]{64}-[a-z0-9]{16}-[^/]+"),
        // The pod's /dev/shm, the only storage of the sandbox.
        "sandbox_storages": [[
            "driver": "ephemeral", "driver_options": [], "source": "shm", "fstype": "tmpfs",
            "options": strings(["noexec", "nosuid", "nodev", "mode=1777", "size=67108864"]),
            "mount_point": "/run/kata-containers/sandbox/shm", "fs_group": .null,
        ]],
        "network": [
            // IFF_NOARP only.
            "interface_flags": 128,
            // NUD_REACHABLE and NUD_PERMANENT; NTF_PROXY and NTF_ROUTER.
            "neighbor_states": [2, 128],
            "neighbor_flags": 136,
            "loopback": strings([#"^127\.(?:[0-9]{1,3}\.){2}[0-9]{1,3}$"#, #"^(?:0{0,4}:){0,7}0{0,3}1$"#]),
        ],
    ]

    /// Variables the platform injects, as regular expressions over `NAME=value`.
    static let platformEnv = [
        #"^HOSTNAME=[A-Za-z0-9_.-]+$"#,
        // Service links (kubelet): FOO_SERVICE_HOST, FOO_SERVICE_PORT[_NAME], FOO_PORT, FOO_PORT_80_TCP[_PROTO|_PORT|_ADDR].
        #"^[A-Z0-9_]+_SERVICE_HOST=[0-9A-Fa-f.:]+$"#,
        #"^[A-Z0-9_]+_SERVICE_PORT(_[A-Za-z0-9_.-]+)?=[0-9]{1,5}$"#,
        #"^[A-Z0-9_]+_PORT=(tcp|udp|sctp)://[0-9A-Fa-f.:\[\]]+:[0-9]{1,5}$"#,
        #"^[A-Z0-9_]+_PORT_[0-9]{1,5}_(TCP|UDP|SCTP)=(tcp|udp|sctp)://[0-9A-Fa-f.:\[\]]+:[0-9]{1,5}$"#,
        #"^[A-Z0-9_]+_PORT_[0-9]{1,5}_(TCP|UDP|SCTP)_PROTO=(tcp|udp|sctp)$"#,
        #"^[A-Z0-9_]+_PORT_[0-9]{1,5}_(TCP|UDP|SCTP)_PORT=[0-9]{1,5}$"#,
        #"^[A-Z0-9_]+_PORT_[0-9]{1,5}_(TCP|UDP|SCTP)_ADDR=[0-9A-Fa-f.:]+$"#,
    ]

    /// What the workload-identity webhook injects (only for pods that use it).
    static let workloadIdentityEnv = [
        #"^AZURE_CLIENT_ID=[A-Fa-f0-9-]*$"#,
        #"^AZURE_TENANT_ID=[A-Fa-f0-9-]*$"#,
        #"^AZURE_FEDERATED_TOKEN_FILE=/var/run/secrets/azure/tokens/azure-identity-token$"#,
        #"^AZURE_AUTHORITY_HOST=https://login\.microsoftonline\.com/$"#,
    ]

    static func strings(_ values: [String]) -> JSONValue { .array(values.map { .string($0) }) }

    /// `text` as a regular expression that matches only itself: each metacharacter (all ASCII) gets a
    /// backslash; every other byte, UTF-8 sequences included, is kept as it is.
    static func escape(_ text: String) -> String {
        func isMeta(_ byte: UInt8) -> Bool {
            switch byte {
            case UInt8(ascii: "\\"), UInt8(ascii: "."), UInt8(ascii: "+"), UInt8(ascii: "*"), UInt8(ascii: "?"), UInt8(ascii: "("),
                UInt8(ascii: ")"), UInt8(ascii: "|"), UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: "{"), UInt8(ascii: "}"),
                UInt8(ascii: "^"), UInt8(ascii: "$"):
                true
            default: false
            }
        }
        guard text.utf8.contains(where: isMeta) else { return text }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count + 8)
        for byte in text.utf8 {
            if isMeta(byte) { bytes.append(UInt8(ascii: "\\")) }
            bytes.append(byte)
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
