import KubernetesClient
import OCIRegistry

/// What the agent must see when the runtime creates one container of the pod, read from the final pod
/// template: `policy_data.containers[i]`, the facts the Rego rules compare a CreateContainer request with.
struct ContainerExpectation {
    let template: JSONValue
    let workloadIdentity: Bool
    let namespace: String
    /// The regular expression every pod name of the workload matches.
    let podName: String
    /// The registry's facts by image as the template writes it.
    var images: [String: ImageFacts] = [:]
    /// `policy.allowedEnvVars`: the only names with any value left for a container whose image config is known.
    var allowedEnvVars: [String] = []

    var podSpec: JSONValue { template["spec"] ?? [:] }

    /// The pause container: the sandbox's first container, the same in every pod but for the pod's user and
    /// seccomp.
    var pause: CanonicalObject {
        var expectation = user(podUser(container: [:], defaultID: 65535))
        // The AKS node pulls its pause image itself too: its layers are pinned when the facts name them.
        let layers = HostPulledLayers.layers(images[HostPulledLayers.aksPauseImage]?.tarfsLayers ?? [])
        if !layers.isEmpty {
            expectation["layers"] = HostPulledLayers.policyData(layers)
            expectation["layer_overlay_options"] = RuntimeFacts.strings(HostPulledLayers.overlayOptions(layers))
        }
        return expectation.adding([
            "cri_type": "sandbox", "kata_type": "pod_sandbox", "name": "", "seccomp": .bool(podSeccomp), "privileged": false,
            "images": [], "pull_sources": RuntimeFacts.strings([RuntimeFacts.pauseImageSource]),
            "args": RuntimeFacts.strings(RuntimeFacts.pauseArgs), "args_tail": [],
            "env": RuntimeFacts.strings(RuntimeFacts.pauseEnv), "env_names": [], "env_sources": [], "env_from_prefixes": [],
            "cwd": "/", "no_new_privileges": true, "terminal": false, "readonly_root": true,
            "capabilities": capabilities(privileged: false, add: [], drop: []),
            "devices": [], "gpus": 0, "storages": [], "exec": [], "runtime_mounts": "sandbox", "mounts": [],
        ])
    }

    /// A container of the template (init containers included).
    func container(_ container: JSONValue) -> CanonicalObject {
        let security = container["securityContext"] ?? [:]
        let privileged = security["privileged"]?.boolValue ?? false
        let facts = images[container["image"]?.stringValue ?? ""]
        let command = stringList(container["command"])
        let args = stringList(container["args"]) ?? []
        // With the image config the whole process is known, built as containerd builds it: a command
        // replaces the entrypoint and drops the image's cmd; args replace the cmd.
        let process = facts.map { facts in
            if let command, !command.isEmpty { return command + args }
            return (facts.entrypoint ?? []) + (args.isEmpty ? facts.cmd ?? [] : args)
        } ?? command.map { $0 + args }
        let terminal = container["tty"]?.boolValue ?? false
        let environment = Environment(container: container, template: template, namespace: namespace, podName: podName)
        // The image's variables, each unless the template sets that name itself.
        let imageEnv = (facts?.env ?? []).filter { !environment.names.contains(String($0.prefix { $0 != "=" })) }
        let mounts = volumeMounts(container)
        let imageNames = PolicyBuilder.imageNames(container["image"]?.stringValue ?? "")
        // On AKS the node may pull the image itself: its layers are then pinned by their root hashes.
        let layers = HostPulledLayers.layers(facts?.tarfsLayers ?? [])
        var expectation = user(podUser(container: security, defaultID: 0, image: facts.map { ImageUser($0.user) ?? ImageUser() }))
        if !layers.isEmpty {
            expectation["layers"] = HostPulledLayers.policyData(layers)
            expectation["layer_overlay_options"] = RuntimeFacts.strings(HostPulledLayers.overlayOptions(layers))
        }
        if facts != nil {
            // Read by the rules instead of policy_data.image_env_names: nothing is guessed for this image.
            expectation["image_env_names"] = RuntimeFacts.strings(Array(Set(allowedEnvVars)).sorted())
        }
        return expectation.adding([
            "cri_type": "container", "kata_type": "pod_container", "seccomp": .bool(seccomp(security["seccompProfile"]) ?? podSeccomp),
            "privileged": .bool(privileged),
            "name": .string(container["name"]?.stringValue ?? ""),
            "images": RuntimeFacts.strings(imageNames),
            "pull_sources": RuntimeFacts.strings(imageNames.map { "^" + RuntimeFacts.escape($0) + "$" }),
            "args": process.map(RuntimeFacts.strings) ?? .null,
            "args_tail": RuntimeFacts.strings(process == nil ? args : []),
            "env": RuntimeFacts.strings(imageEnv + environment.literals),
            "env_names": RuntimeFacts.strings(environment.names),
            "env_sources": .array(environment.sources.map { ["name": .string($0.name), "value": .string($0.pattern)] }),
            "env_from_prefixes": RuntimeFacts.strings(environment.prefixes),
            "cwd": .string(container["workingDir"]?.stringValue ?? facts.flatMap { $0.workingDir.isEmpty ? nil : $0.workingDir } ?? "/"),
            "no_new_privileges": .bool(security["allowPrivilegeEscalation"]?.boolValue == false && !privileged),
            "terminal": .bool(terminal),
            "readonly_root": .bool(security["readOnlyRootFilesystem"]?.boolValue ?? false),
            "capabilities": capabilities(
                privileged: privileged,
                add: stringList(security[path: ["capabilities", "add"]]) ?? [],
                drop: stringList(security[path: ["capabilities", "drop"]]) ?? []),
            "gpus": .number(Double(gpus(container))),
            "devices": RuntimeFacts.strings((container["volumeDevices"]?.arrayValue ?? []).compactMap { $0["devicePath"]?.stringValue }),
            "storages": .array(mounts.storages),
            "runtime_mounts": privileged ? "privileged" : "container",
            "mounts": .array(mounts.mounts),
            "exec": .array(execCommands(container).map { RuntimeFacts.strings($0) }),
        ])
    }

    private func user(_ user: (uid: Int, gid: Int, groups: [Int])) -> CanonicalObject {
        ["uid": .number(Double(user.uid)), "gid": .number(Double(user.gid)), "additional_gids": .array(user.groups.map { .number(Double($0)) })]
    }

    /// Sysctls of every container: the runtime's and the template's `securityContext.sysctls`.
    var sysctls: JSONValue {
        var sysctls = RuntimeFacts.sysctls
        for sysctl in podSpec[path: ["securityContext", "sysctls"]]?.arrayValue ?? [] {
            guard let name = sysctl["name"]?.stringValue, let value = sysctl["value"] else { continue }
            sysctls[name] = value.stringValue ?? value.doubleValue.map { JSONValue.canonical($0) } ?? ""
        }
        return .object(sysctls.mapValues { .string($0) })
    }

    /// Variables the platform injects, as regular expressions over `NAME=value`.
    var platformEnv: JSONValue {
        RuntimeFacts.strings(RuntimeFacts.platformEnv + (workloadIdentity ? RuntimeFacts.workloadIdentityEnv : []))
    }

    /// UID, GID and the additional GIDs: the primary group, `fsGroup` and `supplementalGroups`. The
    /// template's runAsUser and runAsGroup win over the image's user, which wins over `defaultID`.
    private func podUser(container security: JSONValue, defaultID: Int, image: ImageUser? = nil) -> (uid: Int, gid: Int, groups: [Int]) {
        let pod = podSpec["securityContext"] ?? [:]
        let templateUID = security["runAsUser"]?.intValue ?? pod["runAsUser"]?.intValue
        let uid = templateUID ?? image?.uid ?? defaultID
        // The image's group goes with the image's user only.
        let gid = security["runAsGroup"]?.intValue ?? pod["runAsGroup"]?.intValue ?? (templateUID == nil ? image?.gid : nil) ?? defaultID
        let extra = [pod["fsGroup"]?.intValue].compactMap { $0 } + (pod["supplementalGroups"]?.arrayValue ?? []).compactMap(\.intValue)
        return (uid, gid, Array(Set([gid] + extra)).sorted())
    }

    private var podSeccomp: Bool { seccomp(podSpec[path: ["securityContext", "seccompProfile"]]) ?? false }

    /// Whether a seccomp profile applies (RuntimeDefault or Localhost); nil when the template does not say.
    private func seccomp(_ profile: JSONValue?) -> Bool? {
        guard let type = profile?["type"]?.stringValue else { return nil }
        return type != "Unconfined"
    }

    /// Bounding, effective and permitted: the runtime's defaults with the template's add and drop; every
    /// capability for a privileged container (or `add: [ALL]`).
    private func capabilities(privileged: Bool, add: [String], drop: [String]) -> JSONValue {
        guard !privileged, !add.contains("ALL") else { return RuntimeFacts.strings(RuntimeFacts.allCapabilities.sorted()) }
        let normalized = { (names: [String]) in Set(names.map { $0.hasPrefix("CAP_") ? $0 : "CAP_" + $0 }) }
        var granted = drop.contains("ALL") ? [] : Set(RuntimeFacts.defaultCapabilities).subtracting(normalized(drop))
        granted.formUnion(normalized(add))
        return RuntimeFacts.strings(granted.sorted())
    }

    /// The container's own mounts (hostname and DNS files, termination log, tokens, volumes; the runtime's
    /// are in `policy_data.runtime`)
    /// and the storages its volumes need.
    private func volumeMounts(_ container: JSONValue) -> (mounts: [JSONValue], storages: [JSONValue]) {
        // A read-only root makes the pod's hostname and DNS files read-only too.
        let readOnlyRoot = container[path: ["securityContext", "readOnlyRootFilesystem"]]?.boolValue == true
        var mounts = ["/etc/hostname", "/etc/resolv.conf"].map { RuntimeFacts.copiedMount($0, readOnly: readOnlyRoot) }
        let terminationLog = container["terminationMessagePath"]?.stringValue ?? "/dev/termination-log"
        mounts.append(RuntimeFacts.copiedMount(terminationLog, readOnly: false))
        if podSpec["automountServiceAccountToken"]?.boolValue != false {
            mounts.append(RuntimeFacts.copiedMount("/var/run/secrets/kubernetes.io/serviceaccount", readOnly: true))
        }
        if workloadIdentity {
            mounts.append(RuntimeFacts.copiedMount("/var/run/secrets/azure/tokens", readOnly: true))
        }
        var volumes: [String: JSONValue] = [:]
        for volume in podSpec["volumes"]?.arrayValue ?? [] {
            if let name = volume["name"]?.stringValue { volumes[name] = volume }
        }
        var storages: [JSONValue] = []
        for volumeMount in container["volumeMounts"]?.arrayValue ?? [] {
            guard let name = volumeMount["name"]?.stringValue, let destination = volumeMount["mountPath"]?.stringValue,
                  let volume = volumes[name] else { continue }
            let options = ["rbind", "rprivate", volumeMount["readOnly"]?.boolValue == true ? "ro" : "rw"]
            if volume[path: ["emptyDir", "medium"]]?.stringValue == "Memory" {
                // A tmpfs in the guest's memory, mounted under the sandbox's ephemeral folder.
                let folder = #"^/run/kata-containers/sandbox/ephemeral/[^/]+$"#
                mounts.append(RuntimeFacts.mount(destination, type: "bind", source: folder, options: options))
                storages.append([
                    "driver": "ephemeral", "driver_options": [], "source": "^tmpfs$", "fstype": "tmpfs", "options": [],
                    "shared": false, "fs_group": fsGroup, "mount_point": .string(folder),
                ])
            } else if volume["emptyDir"] != nil {
                // An encrypted block device per mount, formatted in the guest; the mount binds its mount point.
                mounts.append(RuntimeFacts.mount(destination, type: "bind", source: #"^/run/kata-containers/sandbox/storage/[A-Za-z0-9_-]+=*$"#, options: options))
                storages.append([
                    "driver": "blk", "driver_options": RuntimeFacts.strings(["encryption_key=ephemeral", "create_filesystem"]),
                    "source": #"^[0-9a-f]{2}(/[0-9a-f]{2})?$"#, "fstype": "ext4", "options": [], "shared": true, "fs_group": fsGroup,
                ])
            } else {
                // ConfigMap, Secret, projected, downward API, host files: copied in by the runtime.
                mounts.append(RuntimeFacts.copiedMount(destination, readOnly: volumeMount["readOnly"]?.boolValue == true))
            }
        }
        return (mounts, storages)
    }

    /// The group the runtime gives volumes (`fsGroup`, changed always): the storage's `fs_group`.
    private var fsGroup: JSONValue {
        guard let group = podSpec[path: ["securityContext", "fsGroup"]]?.intValue else { return .null }
        let onRootMismatch = podSpec[path: ["securityContext", "fsGroupChangePolicy"]]?.stringValue == "OnRootMismatch"
        return ["group_id": .number(Double(group)), "group_change_policy": onRootMismatch ? 1 : 0]
    }

    /// GPUs passed through to the container (`nvidia.com/pgpu` in its limits).
    private func gpus(_ container: JSONValue) -> Int {
        let limit = container[path: ["resources", "limits", "nvidia.com/pgpu"]]
        return limit?.intValue ?? limit?.stringValue.flatMap { Int($0) } ?? 0
    }

    /// Commands of exec probes and exec lifecycle hooks.
    private func execCommands(_ container: JSONValue) -> [[String]] {
        let paths = ["livenessProbe", "readinessProbe", "startupProbe"].map { [$0, "exec", "command"] }
            + ["postStart", "preStop"].map { ["lifecycle", $0, "exec", "command"] }
        return paths.compactMap { stringList(container[path: $0]) }
    }
}

func stringList(_ value: JSONValue?) -> [String]? { value?.arrayValue?.compactMap(\.stringValue) }

/// An image config's `User` when it is numeric: `uid` or `uid:gid`. A name needs the image's
/// /etc/passwd, which cwo does not read (PolicyReady says so); so does the group of a bare uid (0 assumed).
struct ImageUser {
    var uid = 0
    var gid = 0

    init() {}

    init?(_ text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let uid = Int(parts[0]) else { return nil }
        self.uid = uid
        if parts.count == 2 {
            guard let gid = Int(parts[1]) else { return nil }
            self.gid = gid
        }
    }
}

/// A container's environment as the template declares it.
struct Environment {
    /// `NAME=value` of literal variables.
    var literals: [String] = []
    /// Every name the template sets (literal or from a source): no other rule may allow these names.
    var names: [String] = []
    /// Variables whose value comes from elsewhere, with the shape of that value.
    var sources: [(name: String, pattern: String)] = []
    /// `envFrom` prefixes: any variable with one of them.
    var prefixes: [String] = []

    init(container: JSONValue, template: JSONValue, namespace: String, podName: String) {
        var known: [String: String] = [:]
        for variable in container["env"]?.arrayValue ?? [] {
            guard let name = variable["name"]?.stringValue else { continue }
            names.append(name)
            let value = variable["value"]?.stringValue ?? ""
            if let source = variable["valueFrom"], !source.isNull {
                sources.append((name, Self.pattern(of: source, template: template, namespace: namespace, podName: podName)))
            } else if value.contains("$") {
                sources.append((name, "^" + Self.expansion(value, known: known) + "$"))
            } else {
                known[name] = value
                literals.append("\(name)=\(value)")
            }
        }
        for source in container["envFrom"]?.arrayValue ?? [] {
            prefixes.append(RuntimeFacts.escape(source["prefix"]?.stringValue ?? ""))
        }
    }

    /// A value the kubelet expands: `$(NAME)` of an earlier literal becomes its value, of anything else any
    /// text (a source, a service link, or left as written); `$$` is a `$`.
    static func expansion(_ value: String, known: [String: String]) -> String {
        var pattern = ""
        var rest = Substring(value)
        while let dollar = rest.firstIndex(of: "$") {
            pattern += RuntimeFacts.escape(String(rest[..<dollar]))
            let after = rest[rest.index(after: dollar)...]
            if after.hasPrefix("$") {
                pattern += #"\$"#
                rest = after.dropFirst()
            } else if after.hasPrefix("("), let close = after.firstIndex(of: ")") {
                let name = String(after[after.index(after: after.startIndex)..<close])
                pattern += known[name].map(RuntimeFacts.escape) ?? "(?s:.*)"
                rest = after[after.index(after: close)...]
            } else {
                pattern += #"\$"#
                rest = after
            }
        }
        return pattern + RuntimeFacts.escape(String(rest))
    }

    /// The values a `valueFrom` can have: exact where the template knows it, otherwise its shape.
    static func pattern(of source: JSONValue, template: JSONValue, namespace: String, podName: String) -> String {
        guard let field = source[path: ["fieldRef", "fieldPath"]]?.stringValue else {
            // Secret and ConfigMap keys hold anything; resource fields are numbers.
            return source["resourceFieldRef"] != nil ? "^[0-9]+$" : "(?s)^.*$"
        }
        let exact = { (value: String) in "^" + RuntimeFacts.escape(value) + "$" }
        for (prefix, key) in [("metadata.labels['", "labels"), ("metadata.annotations['", "annotations")] where field.hasPrefix(prefix) {
            let name = String(field.dropFirst(prefix.count).dropLast(2))
            return exact(template[path: ["metadata", key, name]]?.stringValue ?? "")
        }
        switch field {
        case "metadata.name": return podName
        case "metadata.namespace": return exact(namespace)
        case "metadata.uid": return "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
        case "spec.serviceAccountName": return exact(template[path: ["spec", "serviceAccountName"]]?.stringValue ?? "default")
        case "spec.nodeName": return #"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"#
        default: return #"^[0-9A-Fa-f.:,]+$"# // status.podIP(s), status.hostIP(s)
        }
    }
}
