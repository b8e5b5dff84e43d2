/// A Deployment's spec read from the API server's protobuf encoding into the JSON the server would send
/// for it, so that a Deployment watched as protobuf is compared, projected and cached exactly as one
/// read as JSON. The server encodes protobuf for a fraction of the CPU JSON costs it (a watched
/// Deployment carries a ~50 KB policy annotation), and on a real cluster it has the encoding already,
/// made for the controller manager's own watch.
///
/// Every message is read through a table of its fields (number, JSON name, kind), taken from the field
/// numbers of k8s.io/api's `generated.proto`. A field the table does not know (a newer API server's, or a
/// table mistake) makes the read fail with `ProtobufSchema.UnknownField`, never a spec with a field
/// silently missing: the caller then reads that Deployment as JSON.
///
/// Zero scalars (`""`, `0`, `false`) are left out, as the JSON encoding leaves out the `omitempty` ones;
/// messages are kept even when empty (`emptyDir: {}` is a volume's kind, `resources: {}` what JSON shows).
public enum ProtobufSchema {
    /// A field number the table has no entry for, in the message named `message`.
    public struct UnknownField: Error, CustomStringConvertible {
        public var message: String
        public var field: Int
        public var description: String { "protobuf: field \(field) of \(message) is not in cwo's schema" }
    }

    /// The JSON of a `message` (a table name, e.g. "DeploymentSpec").
    public static func json(_ reader: ProtobufReader, message: String) throws -> JSONValue {
        var object: [String: JSONValue] = [:]
        try read(reader, message: message, into: &object)
        return .object(object)
    }

    enum Kind {
        case string, bool, integer, strings, integers, strings2strings
        case message(String), messages(String), messagesByKey(String)
        /// An embedded struct whose fields JSON writes into the enclosing object (`json:",inline"`).
        case inline(String)
    }

    struct Field {
        var name: String
        var kind: Kind
        /// Its values repeat across objects (images, mount paths): one copy of each is kept.
        var shared: Bool
    }

    private static func read(_ reader: ProtobufReader, message: String, into object: inout [String: JSONValue]) throws {
        guard let fields = table[message] else { throw UnknownField(message: message, field: 0) }
        var reader = reader
        while let (number, value) = try reader.next() {
            guard let field = fields[number] else {
                // Protobuf writes a field that is not a pointer even when it is zero; JSON leaves such a
                // field out, and an empty value says nothing a comparison could miss.
                if value.isZero { continue }
                throw UnknownField(message: message, field: number)
            }
            switch field.kind {
            case .string:
                let text = try value.string
                if !text.isEmpty { object[field.name] = .string(field.shared ? StringInterner.intern(text) : text) }
            case .bool:
                if try value.bool { object[field.name] = .bool(true) }
            case .integer:
                let number = try value.integer
                if number != 0 { object[field.name] = .number(Double(number)) }
            case .strings:
                append(.string(try value.string), to: field.name, in: &object)
            case .integers:
                if case .bytes(let packed) = value {
                    var numbers = ProtobufReader(packed)
                    while let number = try numbers.nextVarint() { append(.number(Double(Int64(bitPattern: number))), to: field.name, in: &object) }
                } else {
                    append(.number(Double(try value.integer)), to: field.name, in: &object)
                }
            case .strings2strings:
                // Its keys are member names in JSON, shared as the JSON parser shares those.
                let (key, text) = try KubernetesProtobuf.mapEntry(value)
                object[field.name, default: .object([:])][StringInterner.intern(key)] = .string(text)
            case .message(let type):
                let item = try special(value, type) ?? json(value.message, message: type)
                if item != .null { object[field.name] = item }
            case .messages(let type):
                append(try special(value, type) ?? json(value.message, message: type), to: field.name, in: &object)
            case .messagesByKey(let type):
                var entry = try value.message
                var key = ""
                var item: JSONValue = .null
                while let (number, value) = try entry.next() {
                    if number == 1 { key = try value.string } else if number == 2 { item = try special(value, type) ?? json(value.message, message: type) }
                }
                object[field.name, default: .object([:])][key] = item
            case .inline(let type):
                try read(value.message, message: type, into: &object)
            }
        }
    }

    private static func append(_ item: JSONValue, to name: String, in object: inout [String: JSONValue]) {
        if case .array(var items) = object[name] {
            object[name] = nil  // keep the array uniquely referenced while it grows
            items.append(item)
            object[name] = .array(items)
        } else {
            object[name] = .array([item])
        }
    }

    /// The apimachinery types whose JSON is not an object of their fields: a Quantity is its string
    /// (field 1), an IntOrString its number or string (type 1: 0 int 2, 1 string 3), a Time its RFC 3339
    /// text (left out when zero, where JSON writes null).
    private static func special(_ value: ProtobufReader.Value, _ type: String) throws -> JSONValue? {
        switch type {
        case "Quantity":
            var text = ""
            try value.message.forEach([1]) { text = try $0.string }
            return .string(text)
        case "IntOrString":
            var reader = try value.message
            var isString = false
            var number: Int64 = 0
            var text = ""
            while let (field, value) = try reader.next() {
                switch field {
                case 1: isString = try value.integer == 1
                case 2: number = try value.integer
                case 3: text = try value.string
                default: throw UnknownField(message: type, field: field)
                }
            }
            return isString ? .string(text) : .number(Double(number))
        case "Time":
            return try value.length == 0 ? .null : .string(KubernetesProtobuf.timestamp(value.message))
        default:
            return nil
        }
    }

    /// The table, parsed once from `messages`.
    static let table: [String: [Int: Field]] = {
        var table: [String: [Int: Field]] = [:]
        for (message, text) in messages {
            var fields: [Int: Field] = [:]
            for entry in text.split(separator: ";") {
                let words = entry.split(whereSeparator: { $0 == " " || $0 == "\n" })
                guard words.count >= 2, let number = Int(words[0]) else { preconditionFailure("bad schema entry \(entry) of \(message)") }
                let code = words.count > 2 ? String(words[2]) : ""
                let kind: Kind =
                    switch code {
                    case "": .string
                    case "b": .bool
                    case "i": .integer
                    case "[]": .strings
                    case "[]i": .integers
                    case "{}": .strings2strings
                    default:
                        if code.hasPrefix("[]") { .messages(String(code.dropFirst(2))) }
                        else if code.hasPrefix("{}") { .messagesByKey(String(code.dropFirst(2))) }
                        else if code.hasPrefix("*") { .inline(String(code.dropFirst())) }
                        else { .message(code) }
                    }
                let name = String(words[1])
                fields[number] = Field(name: name, kind: kind, shared: StringInterner.sharedValueMembers.contains(name))
            }
            table[message] = fields
        }
        return table
    }()

    /// Each message's fields: `number name [kind]`, the kind one of nothing (a string), `b` (bool), `i`
    /// (int32/int64), `[]` (repeated string), `[]i` (repeated integer), `{}` (map of strings), a message
    /// name, `[]Name` (repeated message), `{}Name` (map of messages) or `*Name` (inlined in JSON).
    /// core/v1 and apps/v1 as reachable from DeploymentSpec; then the apimachinery types they use.
    static let messages: [String: String] = [
        "DeploymentSpec": """
            1 replicas i; 2 selector LabelSelector; 3 template PodTemplateSpec; 4 strategy DeploymentStrategy;
            5 minReadySeconds i; 6 revisionHistoryLimit i; 7 paused b; 9 progressDeadlineSeconds i
            """,
        "PodTemplateSpec": "1 metadata ObjectMeta; 2 spec PodSpec",
        "PodSpec": """
            1 volumes []Volume; 20 initContainers []Container; 2 containers []Container;
            34 ephemeralContainers []EphemeralContainer; 3 restartPolicy; 4 terminationGracePeriodSeconds i;
            5 activeDeadlineSeconds i; 6 dnsPolicy; 7 nodeSelector {}; 8 serviceAccountName; 9 serviceAccount;
            21 automountServiceAccountToken b; 10 nodeName; 11 hostNetwork b; 12 hostPID b; 13 hostIPC b;
            27 shareProcessNamespace b; 14 securityContext PodSecurityContext;
            15 imagePullSecrets []LocalObjectReference; 16 hostname; 17 subdomain; 18 affinity Affinity;
            19 schedulerName; 22 tolerations []Toleration; 23 hostAliases []HostAlias; 24 priorityClassName;
            25 priority i; 26 dnsConfig PodDNSConfig; 28 readinessGates []PodReadinessGate; 29 runtimeClassName;
            30 enableServiceLinks b; 31 preemptionPolicy; 32 overhead {}Quantity;
            33 topologySpreadConstraints []TopologySpreadConstraint; 35 setHostnameAsFQDN b; 36 os PodOS;
            37 hostUsers b; 38 schedulingGates []PodSchedulingGate; 39 resourceClaims []PodResourceClaim;
            40 resources ResourceRequirements; 41 hostnameOverride; 43 schedulingGroup PodSchedulingGroup;
            44 evictionResponders []EvictionResponder
            """,
        "Volume": "1 name; 2 volumeSource *VolumeSource",
        "VolumeSource": """
            1 hostPath HostPathVolumeSource; 2 emptyDir EmptyDirVolumeSource;
            3 gcePersistentDisk GCEPersistentDiskVolumeSource;
            4 awsElasticBlockStore AWSElasticBlockStoreVolumeSource; 5 gitRepo GitRepoVolumeSource;
            6 secret SecretVolumeSource; 7 nfs NFSVolumeSource; 8 iscsi ISCSIVolumeSource;
            9 glusterfs GlusterfsVolumeSource; 10 persistentVolumeClaim PersistentVolumeClaimVolumeSource;
            11 rbd RBDVolumeSource; 12 flexVolume FlexVolumeSource; 13 cinder CinderVolumeSource;
            14 cephfs CephFSVolumeSource; 15 flocker FlockerVolumeSource; 16 downwardAPI DownwardAPIVolumeSource;
            17 fc FCVolumeSource; 18 azureFile AzureFileVolumeSource; 19 configMap ConfigMapVolumeSource;
            20 vsphereVolume VsphereVirtualDiskVolumeSource; 21 quobyte QuobyteVolumeSource;
            22 azureDisk AzureDiskVolumeSource; 23 photonPersistentDisk PhotonPersistentDiskVolumeSource;
            26 projected ProjectedVolumeSource; 24 portworxVolume PortworxVolumeSource;
            25 scaleIO ScaleIOVolumeSource; 27 storageos StorageOSVolumeSource; 28 csi CSIVolumeSource;
            29 ephemeral EphemeralVolumeSource; 30 image ImageVolumeSource
            """,
        "HostPathVolumeSource": "1 path; 2 type",
        "EmptyDirVolumeSource": "1 medium; 2 sizeLimit Quantity; 3 mode i",
        "GCEPersistentDiskVolumeSource": "1 pdName; 2 fsType; 3 partition i; 4 readOnly b",
        "AWSElasticBlockStoreVolumeSource": "1 volumeID; 2 fsType; 3 partition i; 4 readOnly b",
        "GitRepoVolumeSource": "1 repository; 2 revision; 3 directory",
        "SecretVolumeSource": "1 secretName; 2 items []KeyToPath; 3 defaultMode i; 4 optional b; 5 defaultUser i",
        "KeyToPath": "1 key; 2 path; 3 mode i; 4 user i",
        "NFSVolumeSource": "1 server; 2 path; 3 readOnly b",
        "ISCSIVolumeSource": """
            1 targetPortal; 2 iqn; 3 lun i; 4 iscsiInterface; 5 fsType; 6 readOnly b; 7 portals [];
            8 chapAuthDiscovery b; 11 chapAuthSession b; 10 secretRef LocalObjectReference; 12 initiatorName
            """,
        "LocalObjectReference": "1 name",
        "GlusterfsVolumeSource": "1 endpoints; 2 path; 3 readOnly b",
        "PersistentVolumeClaimVolumeSource": "1 claimName; 2 readOnly b",
        "RBDVolumeSource": """
            1 monitors []; 2 image; 3 fsType; 4 pool; 5 user; 6 keyring; 7 secretRef LocalObjectReference;
            8 readOnly b
            """,
        "FlexVolumeSource": "1 driver; 2 fsType; 3 secretRef LocalObjectReference; 4 readOnly b; 5 options {}",
        "CinderVolumeSource": "1 volumeID; 2 fsType; 3 readOnly b; 4 secretRef LocalObjectReference",
        "CephFSVolumeSource": "1 monitors []; 2 path; 3 user; 4 secretFile; 5 secretRef LocalObjectReference; 6 readOnly b",
        "FlockerVolumeSource": "1 datasetName; 2 datasetUUID",
        "DownwardAPIVolumeSource": "1 items []DownwardAPIVolumeFile; 2 defaultMode i; 3 defaultUser i",
        "DownwardAPIVolumeFile": "1 path; 2 fieldRef ObjectFieldSelector; 3 resourceFieldRef ResourceFieldSelector; 4 mode i; 5 user i",
        "ObjectFieldSelector": "1 apiVersion; 2 fieldPath",
        "ResourceFieldSelector": "1 containerName; 2 resource; 3 divisor Quantity",
        "FCVolumeSource": "1 targetWWNs []; 2 lun i; 3 fsType; 4 readOnly b; 5 wwids []",
        "AzureFileVolumeSource": "1 secretName; 2 shareName; 3 readOnly b",
        "ConfigMapVolumeSource": """
            1 localObjectReference *LocalObjectReference; 2 items []KeyToPath; 3 defaultMode i; 4 optional b;
            5 defaultUser i
            """,
        "VsphereVirtualDiskVolumeSource": "1 volumePath; 2 fsType; 3 storagePolicyName; 4 storagePolicyID",
        "QuobyteVolumeSource": "1 registry; 2 volume; 3 readOnly b; 4 user; 5 group; 6 tenant",
        "AzureDiskVolumeSource": "1 diskName; 2 diskURI; 3 cachingMode; 4 fsType; 5 readOnly b; 6 kind",
        "PhotonPersistentDiskVolumeSource": "1 pdID; 2 fsType",
        "ProjectedVolumeSource": "1 sources []VolumeProjection; 2 defaultMode i; 3 defaultUser i",
        "VolumeProjection": """
            1 secret SecretProjection; 2 downwardAPI DownwardAPIProjection; 3 configMap ConfigMapProjection;
            4 serviceAccountToken ServiceAccountTokenProjection;
            5 clusterTrustBundle ClusterTrustBundleProjection; 6 podCertificate PodCertificateProjection
            """,
        "SecretProjection": "1 localObjectReference *LocalObjectReference; 2 items []KeyToPath; 4 optional b",
        "DownwardAPIProjection": "1 items []DownwardAPIVolumeFile",
        "ConfigMapProjection": "1 localObjectReference *LocalObjectReference; 2 items []KeyToPath; 4 optional b",
        "ServiceAccountTokenProjection": "1 audience; 2 expirationSeconds i; 3 path; 4 user i",
        "ClusterTrustBundleProjection": "1 name; 2 signerName; 3 labelSelector LabelSelector; 5 optional b; 4 path; 6 user i",
        "PodCertificateProjection": """
            1 signerName; 2 keyType; 3 maxExpirationSeconds i; 4 credentialBundlePath; 5 keyPath;
            6 certificateChainPath; 7 userAnnotations {}; 8 user i
            """,
        "PortworxVolumeSource": "1 volumeID; 2 fsType; 3 readOnly b",
        "ScaleIOVolumeSource": """
            1 gateway; 2 system; 3 secretRef LocalObjectReference; 4 sslEnabled b; 5 protectionDomain;
            6 storagePool; 7 storageMode; 8 volumeName; 9 fsType; 10 readOnly b
            """,
        "StorageOSVolumeSource": "1 volumeName; 2 volumeNamespace; 3 fsType; 4 readOnly b; 5 secretRef LocalObjectReference",
        "CSIVolumeSource": "1 driver; 2 readOnly b; 3 fsType; 4 volumeAttributes {}; 5 nodePublishSecretRef LocalObjectReference",
        "EphemeralVolumeSource": "1 volumeClaimTemplate PersistentVolumeClaimTemplate",
        "PersistentVolumeClaimTemplate": "1 metadata ObjectMeta; 2 spec PersistentVolumeClaimSpec",
        "PersistentVolumeClaimSpec": """
            1 accessModes []; 4 selector LabelSelector; 2 resources VolumeResourceRequirements; 3 volumeName;
            5 storageClassName; 6 volumeMode; 7 dataSource TypedLocalObjectReference;
            8 dataSourceRef TypedObjectReference; 9 volumeAttributesClassName
            """,
        "VolumeResourceRequirements": "1 limits {}Quantity; 2 requests {}Quantity",
        "TypedLocalObjectReference": "1 apiGroup; 2 kind; 3 name",
        "TypedObjectReference": "1 apiGroup; 2 kind; 3 name; 4 namespace",
        "ImageVolumeSource": "1 reference; 2 pullPolicy",
        "Container": """
            1 name; 2 image; 3 command []; 4 args []; 5 workingDir; 6 ports []ContainerPort;
            19 envFrom []EnvFromSource; 7 env []EnvVar; 8 resources ResourceRequirements;
            23 resizePolicy []ContainerResizePolicy; 24 restartPolicy;
            25 restartPolicyRules []ContainerRestartRule; 9 volumeMounts []VolumeMount;
            21 volumeDevices []VolumeDevice; 10 livenessProbe Probe; 11 readinessProbe Probe;
            22 startupProbe Probe; 12 lifecycle Lifecycle; 13 terminationMessagePath;
            20 terminationMessagePolicy; 14 imagePullPolicy; 15 securityContext SecurityContext; 16 stdin b;
            17 stdinOnce b; 18 tty b
            """,
        "ContainerPort": "1 name; 2 hostPort i; 3 containerPort i; 4 protocol; 5 hostIP",
        "EnvFromSource": "1 prefix; 2 configMapRef ConfigMapEnvSource; 3 secretRef SecretEnvSource",
        "ConfigMapEnvSource": "1 localObjectReference *LocalObjectReference; 2 optional b",
        "SecretEnvSource": "1 localObjectReference *LocalObjectReference; 2 optional b",
        "EnvVar": "1 name; 2 value; 3 valueFrom EnvVarSource",
        "EnvVarSource": """
            1 fieldRef ObjectFieldSelector; 2 resourceFieldRef ResourceFieldSelector;
            3 configMapKeyRef ConfigMapKeySelector; 4 secretKeyRef SecretKeySelector;
            5 fileKeyRef FileKeySelector
            """,
        "ConfigMapKeySelector": "1 localObjectReference *LocalObjectReference; 2 key; 3 optional b",
        "SecretKeySelector": "1 localObjectReference *LocalObjectReference; 2 key; 3 optional b",
        "FileKeySelector": "1 volumeName; 2 path; 3 key; 4 optional b",
        "ResourceRequirements": "1 limits {}Quantity; 2 requests {}Quantity; 3 claims []ResourceClaim",
        "ResourceClaim": "1 name; 2 request",
        "ContainerResizePolicy": "1 resourceName; 2 restartPolicy",
        "ContainerRestartRule": "1 action; 2 exitCodes ContainerRestartRuleOnExitCodes",
        "ContainerRestartRuleOnExitCodes": "1 operator; 2 values []i",
        "VolumeMount": """
            1 name; 2 readOnly b; 7 recursiveReadOnly; 3 mountPath; 4 subPath; 5 mountPropagation; 6 subPathExpr;
            8 bindMountOptions []
            """,
        "VolumeDevice": "1 name; 2 devicePath",
        "Probe": """
            1 handler *ProbeHandler; 2 initialDelaySeconds i; 3 timeoutSeconds i; 4 periodSeconds i;
            5 successThreshold i; 6 failureThreshold i; 7 terminationGracePeriodSeconds i
            """,
        "ProbeHandler": "1 exec ExecAction; 2 httpGet HTTPGetAction; 3 tcpSocket TCPSocketAction; 4 grpc GRPCAction",
        "ExecAction": "1 command []",
        "HTTPGetAction": "1 path; 2 port IntOrString; 3 host; 4 scheme; 5 httpHeaders []HTTPHeader; 6 protocol",
        "HTTPHeader": "1 name; 2 value",
        "TCPSocketAction": "1 port IntOrString; 2 host",
        "GRPCAction": "1 port i; 2 service; 3 mode",
        "Lifecycle": "1 postStart LifecycleHandler; 2 preStop LifecycleHandler; 3 stopSignal",
        "LifecycleHandler": "1 exec ExecAction; 2 httpGet HTTPGetAction; 3 tcpSocket TCPSocketAction; 4 sleep SleepAction",
        "SleepAction": "1 seconds i",
        "SecurityContext": """
            1 capabilities Capabilities; 2 privileged b; 3 seLinuxOptions SELinuxOptions;
            10 windowsOptions WindowsSecurityContextOptions; 4 runAsUser i; 8 runAsGroup i; 5 runAsNonRoot b;
            6 readOnlyRootFilesystem b; 7 allowPrivilegeEscalation b; 9 procMount;
            11 seccompProfile SeccompProfile; 12 appArmorProfile AppArmorProfile
            """,
        "Capabilities": "1 add []; 2 drop []",
        "SELinuxOptions": "1 user; 2 role; 3 type; 4 level",
        "WindowsSecurityContextOptions": "1 gmsaCredentialSpecName; 2 gmsaCredentialSpec; 3 runAsUserName; 4 hostProcess b",
        "SeccompProfile": "1 type; 2 localhostProfile",
        "AppArmorProfile": "1 type; 2 localhostProfile",
        // EphemeralContainerCommon has Container's fields, numbered alike.
        "EphemeralContainer": "1 ephemeralContainerCommon *Container; 2 targetContainerName",
        "PodSecurityContext": """
            1 seLinuxOptions SELinuxOptions; 8 windowsOptions WindowsSecurityContextOptions; 2 runAsUser i;
            6 runAsGroup i; 3 runAsNonRoot b; 4 supplementalGroups []i; 12 supplementalGroupsPolicy; 5 fsGroup i;
            7 sysctls []Sysctl; 9 fsGroupChangePolicy; 10 seccompProfile SeccompProfile;
            11 appArmorProfile AppArmorProfile; 13 seLinuxChangePolicy
            """,
        "Sysctl": "1 name; 2 value",
        "Affinity": "1 nodeAffinity NodeAffinity; 2 podAffinity PodAffinity; 3 podAntiAffinity PodAntiAffinity",
        "NodeAffinity": """
            1 requiredDuringSchedulingIgnoredDuringExecution NodeSelector;
            2 preferredDuringSchedulingIgnoredDuringExecution []PreferredSchedulingTerm
            """,
        "NodeSelector": "1 nodeSelectorTerms []NodeSelectorTerm",
        "NodeSelectorTerm": "1 matchExpressions []NodeSelectorRequirement; 2 matchFields []NodeSelectorRequirement",
        "NodeSelectorRequirement": "1 key; 2 operator; 3 values []",
        "PreferredSchedulingTerm": "1 weight i; 2 preference NodeSelectorTerm",
        "PodAffinity": """
            1 requiredDuringSchedulingIgnoredDuringExecution []PodAffinityTerm;
            2 preferredDuringSchedulingIgnoredDuringExecution []WeightedPodAffinityTerm
            """,
        "PodAffinityTerm": """
            1 labelSelector LabelSelector; 2 namespaces []; 3 topologyKey; 4 namespaceSelector LabelSelector;
            5 matchLabelKeys []; 6 mismatchLabelKeys []
            """,
        "WeightedPodAffinityTerm": "1 weight i; 2 podAffinityTerm PodAffinityTerm",
        "PodAntiAffinity": """
            1 requiredDuringSchedulingIgnoredDuringExecution []PodAffinityTerm;
            2 preferredDuringSchedulingIgnoredDuringExecution []WeightedPodAffinityTerm
            """,
        "Toleration": "1 key; 2 operator; 3 value; 4 effect; 5 tolerationSeconds i",
        "HostAlias": "1 ip; 2 hostnames []",
        "PodDNSConfig": "1 nameservers []; 2 searches []; 3 options []PodDNSConfigOption",
        "PodDNSConfigOption": "1 name; 2 value",
        "PodReadinessGate": "1 conditionType",
        "TopologySpreadConstraint": """
            1 maxSkew i; 2 topologyKey; 3 whenUnsatisfiable; 4 labelSelector LabelSelector; 5 minDomains i;
            6 nodeAffinityPolicy; 7 nodeTaintsPolicy; 8 matchLabelKeys []
            """,
        "PodOS": "1 name",
        "PodSchedulingGate": "1 name",
        "PodResourceClaim": "1 name; 3 resourceClaimName; 4 resourceClaimTemplateName",
        "PodSchedulingGroup": "1 podGroupName",
        "EvictionResponder": "1 name; 2 priority i",
        "DeploymentStrategy": "1 type; 2 rollingUpdate RollingUpdateDeployment",
        "RollingUpdateDeployment": "1 maxUnavailable IntOrString; 2 maxSurge IntOrString",
        "ObjectMeta": """
            1 name; 2 generateName; 3 namespace; 4 selfLink; 5 uid; 6 resourceVersion; 7 generation i;
            8 creationTimestamp Time; 9 deletionTimestamp Time; 10 deletionGracePeriodSeconds i; 11 labels {};
            12 annotations {}; 13 ownerReferences []OwnerReference; 14 finalizers []; 15 clusterName
            """,
        "OwnerReference": "1 kind; 3 name; 4 uid; 5 apiVersion; 6 controller b; 7 blockOwnerDeletion b",
        "LabelSelector": "1 matchLabels {}; 2 matchExpressions []LabelSelectorRequirement",
        "LabelSelectorRequirement": "1 key; 2 operator; 3 values []",
    ]
}

extension ProtobufReader.Value {
    /// A zero number, or an empty string, bytes or message.
    var isZero: Bool {
        switch self {
        case .varint(let number), .fixed(let number): number == 0
        case .bytes(let slice): slice.isEmpty
        }
    }
}
