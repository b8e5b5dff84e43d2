/// The Rego rules of a generated agent policy. `policy_data` (the workload's facts) follows them.
///
/// Written so that both agents' engines read them the same way: regorus 0.2.8 (the AKS agent, Rego v0 with
/// the future keywords imported) and regorus 0.9 (the upstream agent, Rego v1): every rule body has `if`,
/// and no rule is a partial set.
enum PolicyRules {
    /// Every request the agent asks about (`data.agent_policy.<name>`), as it spells them.
    static let requests = [
        "AddARPNeighborsRequest", "AddSwapPathRequest", "AddSwapRequest", "CloseStdinRequest", "CopyFileRequest",
        "CreateContainerRequest", "CreateSandboxRequest", "DestroySandboxRequest", "ExecProcessRequest",
        "GetDiagnosticDataRequest", "GetIPTablesRequest", "GetMetricsRequest", "GetOOMEventRequest", "GuestDetailsRequest",
        "ListInterfacesRequest", "ListRoutesRequest", "MemAgentCompactConfig", "MemAgentMemcgConfig",
        "MemHotplugByProbeRequest", "OnlineCPUMemRequest", "PauseContainerRequest", "ReadStreamRequest",
        "RemoveContainerRequest", "RemoveStaleVirtiofsShareMountsRequest", "ReseedRandomDevRequest", "ResizeVolumeRequest",
        "ResumeContainerRequest", "SetGuestDateTimeRequest", "SetIPTablesRequest", "SetPolicyRequest", "SignalProcessRequest",
        "StartContainerRequest", "StartTracingRequest", "StatsContainerRequest", "StopTracingRequest", "TtyWinResizeRequest",
        "UpdateContainerRequest", "UpdateEphemeralMountsRequest", "UpdateInterfaceRequest", "UpdateRoutesRequest",
        "VolumeStatsRequest", "WaitProcessRequest", "WriteStreamRequest",
    ]

    /// Allowed whatever their content: the lifecycle of processes the policy already let in, and stats.
    static let allowedByDefault: Set = [
        "DestroySandboxRequest", "GetOOMEventRequest", "GuestDetailsRequest", "OnlineCPUMemRequest", "RemoveContainerRequest",
        "RemoveStaleVirtiofsShareMountsRequest", "SignalProcessRequest", "StartContainerRequest", "StatsContainerRequest",
        "TtyWinResizeRequest", "WaitProcessRequest",
    ]

    static let defaults = (requests.map { "default \($0) := \(allowedByDefault.contains($0))" } + ["default AllowRequestsFailingPolicy := false"])
        .joined(separator: "\n")

    /// What every generated policy begins with: `policy_data`'s JSON follows it.
    static let generatedPrefix = header + "\n" + defaults + "\n\n" + rules + "policy_data := "

    /// Hashes and encodes policies (and their annotations) past the prefix they share.
    static let generated = PrefixedText(generatedPrefix)

    static let header = """
        package agent_policy

        import future.keywords.every
        import future.keywords.if
        import future.keywords.in

        """

    /// Every request allowed: what `mode: AllowAll` (with `allowInsecure`) produces.
    static var allowAll: String {
        header + "\n" + requests.map { "default \($0) := true" }.joined(separator: "\n") + "\ndefault AllowRequestsFailingPolicy := false\n"
    }

    static let rules = #"""
        # The pod's own facts are in policy_data (after these rules); what the runtime always produces is in
        # policy_data.runtime. Every request the agent asks about has a default; rules below only widen it.
        # Policy state (data.pstate, written by the agent from the "ops" a rule returns) pins what the first
        # container of the pod shows: its sandbox name and id, its network namespace, and which template
        # container each container id is.

        CreateContainerRequest := {"allowed": true, "ops": ops} if {
        	create_input_has_no_extras
        	some index, expected in policy_data.containers
        	create_matches(expected)
        	ops := array.concat(sandbox_pins, [{"op": "add", "path": container_key(input.container_id), "value": index}])
        }

        # What no generated pod ever asks for, whichever container it is.
        create_input_has_no_extras if {
        	count(input.shared_mounts) == 0
        	input.string_user == null
        	oci := input.OCI
        	oci.Hooks == null
        	oci.Solaris == null
        	oci.Windows == null
        	count(oci.Linux.UIDMappings) == 0
        	count(oci.Linux.GIDMappings) == 0
        	oci.Linux.RootfsPropagation == ""
        	oci.Linux.MountLabel == ""
        	oci.Linux.IntelRdt == null
        	count(oci.Linux.Resources.Devices) == 0
        	oci.Process.SelinuxLabel == ""
        	oci.Process.User.Username == ""
        	oci.Version == policy_data.runtime.oci_version
        }

        create_matches(expected) if {
        	oci := input.OCI
        	annotations := oci.Annotations
        	annotations["io.kubernetes.cri.container-type"] == expected.cri_type
        	annotations["io.katacontainers.pkg.oci.container_type"] == expected.kata_type
        	object.get(annotations, "io.kubernetes.cri.container-name", "") == expected.name
        	sandbox_matches
        	bundle := bundle_id(oci.Root.Path)
        	annotations_match(expected, annotations, bundle)
        	image_matches(expected, annotations)
        	arguments_match(expected, oci.Process.Args)
        	process_matches(expected, oci.Process, true)
        	linux_matches(expected, oci.Linux)
        	oci.Root.Readonly == expected.readonly_root
        	input.sandbox_pidns == policy_data.share_process_namespace
        	mounts_match(expected, oci.Mounts, bundle)
        	storages_match(expected, input.storages, bundle)
        	devices_match(expected, input.devices, oci.Linux.Devices)
        }

        # ---- The sandbox: this workload's namespace, a pod name of this workload, pinned by the first container.

        sandbox_name := input.OCI.Annotations["io.kubernetes.cri.sandbox-name"]

        sandbox_id := input.OCI.Annotations["io.kubernetes.cri.sandbox-id"]

        sandbox_matches if {
        	input.OCI.Annotations["io.kubernetes.cri.sandbox-namespace"] == policy_data.namespace
        	regex.match(policy_data.sandbox_name, sandbox_name)
        	regex.match("^[a-z0-9]{64}$", sandbox_id)
        }

        network_namespace := path if {
        	paths := [ns.Path | some ns in input.OCI.Linux.Namespaces; ns.Type == "network"]
        	count(paths) <= 1
        	path := concat("", paths)
        }

        sandbox_pins := array.concat(array.concat(pin("sandbox_name", sandbox_name), pin("sandbox_id", sandbox_id)), pin("network_namespace", network_namespace))

        # An op that records key=value, or none when the state already holds that value; undefined (a denial)
        # when the state holds another value.
        pin(key, value) := [] if {
        	data.pstate[key] == value
        }

        pin(key, value) := [{"op": "add", "path": concat("/", ["/pstate", key]), "value": value}] if {
        	not key in object.keys(data.pstate)
        }

        container_key(id) := concat("", ["/pstate/container-", id])

        # The container index a container id was created as.
        created_as(id) := data.pstate[concat("", ["container-", id])]

        # ---- Annotations: the runtime's own (io.kubernetes.cri.*) and the ones Kata adds, nothing else.

        annotations_match(expected, annotations, bundle) if {
        	every key, value in annotations {
        		annotation_allowed(expected, key, value, bundle)
        	}
        	log_directory_matches(expected, annotations)
        }

        annotation_allowed(_, key, _, _) if {
        	startswith(key, "io.kubernetes.cri.")
        	key != "io.kubernetes.cri.sandbox-log-directory"
        }

        annotation_allowed(expected, "io.kubernetes.cri.sandbox-log-directory", _, _) if {
        	expected.cri_type == "sandbox"
        }

        annotation_allowed(_, "io.katacontainers.pkg.oci.container_type", _, _) := true

        annotation_allowed(_, "io.katacontainers.pkg.oci.bundle_path", value, bundle) if {
        	value == concat("/", [policy_data.runtime.bundle_parent, bundle])
        }

        # A GPU's CDI device, numbered like its VFIO device.
        annotation_allowed(_, key, value, _) if {
        	regex.match("^cdi\\.k8s\\.io/vfio[0-9]+$", key)
        	regex.match("^nvidia\\.com/gpu=[0-9]+$", value)
        }

        annotation_allowed(expected, "nerdctl/network-namespace", value, _) if {
        	expected.cri_type == "sandbox"
        	regex.match(policy_data.runtime.netns_path, value)
        }

        log_directory_matches(expected, _) if {
        	expected.cri_type == "container"
        }

        log_directory_matches(expected, annotations) if {
        	expected.cri_type == "sandbox"
        	directory := annotations["io.kubernetes.cri.sandbox-log-directory"]
        	prefix := concat("", ["/var/log/pods/", policy_data.namespace, "_", sandbox_name, "_"])
        	startswith(directory, prefix)
        	regex.match("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", substring(directory, count(prefix), -1))
        }

        # The image in any form containerd reports it, when it reports it (the guest-pull storage pins it too).
        image_matches(expected, annotations) if {
        	not annotations["io.kubernetes.cri.image-name"]
        }

        image_matches(expected, annotations) if {
        	annotations["io.kubernetes.cri.image-name"] in expected.images
        }

        # ---- The process: arguments, environment, user, directory, capabilities, flags.

        process_matches(expected, process, created) if {
        	every variable in process.Env {
        		variable_allowed(expected, variable)
        	}
        	process.Cwd == expected.cwd
        	process.User.UID == expected.uid
        	process.User.GID == expected.gid
        	{gid | some gid in process.User.AdditionalGids} == {gid | some gid in expected.additional_gids}
        	process.NoNewPrivileges == expected.no_new_privileges
        	created_process_matches(expected, process, created)
        }

        created_process_matches(_, _, false) := true

        created_process_matches(expected, process, true) if {
        	process.ApparmorProfile in policy_data.runtime.apparmor_profiles
        	process.Terminal == expected.terminal
        	capabilities_match(expected.capabilities, process.Capabilities)
        }

        arguments_match(expected, arguments) if {
        	expected.args != null
        	arguments == expected.args
        }

        # Weaker, named in the workload's PolicyReady message: a container without `command` runs its image's
        # entrypoint, which cwo does not know yet; only the template's `args` (if any) are pinned, at the end.
        arguments_match(expected, arguments) if {
        	expected.args == null
        	tail := expected.args_tail
        	count(arguments) > count(tail)
        	array.slice(arguments, count(arguments) - count(tail), count(arguments)) == tail
        }

        # Bounding, effective and permitted exactly the container's; none inheritable or ambient.
        capabilities_match(granted, actual) if {
        	every set in ["Bounding", "Effective", "Permitted"] {
        		{capability_name(c) | some c in object.get(actual, set, [])} == {capability_name(c) | some c in granted}
        	}
        	every set in ["Ambient", "Inheritable"] {
        		count(object.get(actual, set, [])) == 0
        	}
        }

        capability_name(name) := substring(name, 4, -1) if {
        	startswith(name, "CAP_")
        } else := name

        # A variable is allowed when the template sets it to exactly this value...
        variable_allowed(expected, variable) if {
        	variable in expected.env
        }

        # ...or the template takes it from a source whose value cwo cannot know (Secret, ConfigMap, pod IP...),
        # each kind with the shape its values have...
        variable_allowed(expected, variable) if {
        	some source in expected.env_sources
        	startswith(variable, concat("", [source.name, "="]))
        	regex.match(source.value, substring(variable, count(source.name) + 1, -1))
        }

        # ...or an `envFrom` source with this prefix provides it (any name after the prefix, any value)...
        variable_allowed(expected, variable) if {
        	some prefix in expected.env_from_prefixes
        	regex.match(concat("", ["^", prefix, "[A-Za-z_][A-Za-z0-9_.-]*="]), variable)
        }

        # ...or the platform sets it (service links, HOSTNAME, workload identity; TERM with a terminal)...
        variable_allowed(expected, variable) if {
        	expected.cri_type == "container"
        	not variable_name(variable) in expected.env_names
        	some pattern in policy_data.platform_env
        	regex.match(pattern, variable)
        }

        variable_allowed(expected, "TERM=xterm") if {
        	expected.terminal
        	not "TERM" in expected.env_names
        }

        # ...or (weaker, named in PolicyReady) the image config may set it: a name of policy.imageEnvVars or
        # policy.allowedEnvVars that the template does not set itself, with any value. A container whose image
        # config cwo read has its variables in `env` and only policy.allowedEnvVars here.
        variable_allowed(expected, variable) if {
        	expected.cri_type == "container"
        	name := variable_name(variable)
        	not name in expected.env_names
        	name in object.get(expected, "image_env_names", policy_data.image_env_names)
        }

        variable_name(variable) := split(variable, "=")[0]

        # ---- Linux: namespaces, sysctls, masked and read-only paths, devices, seccomp.

        linux_matches(expected, linux) if {
        	{ns.Type | some ns in linux.Namespaces; not ns.Type in {"network", "cgroup"}} == {t | some t in policy_data.runtime.namespaces}
        	every ns in linux.Namespaces {
        		namespace_joined_only_for_network(ns)
        	}
        	every name, value in linux.Sysctl {
        		policy_data.sysctls[name] == value
        	}
        	paths_hidden(expected, linux)
        	seccomp_matches(expected, linux.Seccomp)
        }

        # containerd masks and makes read-only these /proc and /sys paths, except for a privileged container.
        paths_hidden(expected, _) if {
        	expected.privileged
        }

        paths_hidden(expected, linux) if {
        	not expected.privileged
        	every path in policy_data.runtime.masked_paths {
        		path in linux.MaskedPaths
        	}
        	every path in policy_data.runtime.readonly_paths {
        		readonly_or_masked(path, linux)
        	}
        }

        # The pod's network namespace is the only one a container joins (its path is pinned in the state).
        namespace_joined_only_for_network(ns) if {
        	ns.Type == "network"
        }

        namespace_joined_only_for_network(ns) if {
        	ns.Path == ""
        }

        readonly_or_masked(path, linux) if {
        	path in linux.ReadonlyPaths
        }

        readonly_or_masked(path, linux) if {
        	path in linux.MaskedPaths
        }

        seccomp_matches(_, null) := true

        seccomp_matches(expected, profile) if {
        	profile != null
        	expected.seccomp == true
        }

        devices_match(expected, devices, linux_devices) if {
        	every device in devices {
        		device_allowed(expected, device)
        	}
        	every device in linux_devices {
        		device.Path in expected.devices
        	}
        	gpus_match(expected, devices, input.OCI.Annotations)
        }

        device_allowed(expected, device) if {
        	device.container_path in expected.devices
        }

        # A GPU passed through: a VFIO device with a PCI address.
        device_allowed(expected, device) if {
        	expected.gpus > 0
        	number := trim_prefix(device.container_path, "/dev/vfio/devices/vfio")
        	regex.match("^[0-9]+$", number)
        	device.id == concat("", ["vfio", number])
        	device.type_ == "vfio-pci-gk"
        	device.vm_path == ""
        	count(device.options) > 0
        	every option in device.options {
        		regex.match("^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[01][0-9a-fA-F]\\.[0-7]=[0-9a-fA-F]{2}/[0-9a-fA-F]{2}$", option)
        	}
        }

        # As many CDI devices as the template's GPUs, each hot-plugged once as the VFIO device of its number, or
        # all cold-plugged (no VFIO device in the request).
        gpus_match(expected, devices, annotations) if {
        	cdi := [trim_prefix(key, "cdi.k8s.io/vfio") | some key, _ in annotations; startswith(key, "cdi.k8s.io/vfio")]
        	count(cdi) == expected.gpus
        	vfio := [trim_prefix(d.container_path, "/dev/vfio/devices/vfio") | some d in devices; startswith(d.container_path, "/dev/vfio/")]
        	gpus_plugged(vfio, cdi)
        }

        gpus_plugged(vfio, _) if {
        	count(vfio) == 0
        }

        gpus_plugged(vfio, cdi) if {
        	count({n | some n in vfio}) == count(vfio)
        	{n | some n in vfio} == {n | some n in cdi}
        }

        # ---- Mounts: each mount of the request is one of the container's, and no two share one.

        mounts_match(expected, mounts, bundle) if {
        	used := {index | some mount in mounts; some index, candidate in mount_candidates(expected); mount_fits(candidate, mount, bundle)}
        	count(used) == count(mounts)
        	every mount in mounts {
        		mount_ok(expected, mount, bundle)
        	}
        }

        # The runtime's mounts of this kind of container, then the container's own.
        mount_candidates(expected) := array.concat(policy_data.runtime.mounts[expected.runtime_mounts], expected.mounts)

        mount_ok(expected, mount, bundle) if {
        	some candidate in mount_candidates(expected)
        	mount_fits(candidate, mount, bundle)
        }

        mount_fits(candidate, mount, bundle) if {
        	candidate.destination == mount.destination
        	candidate.type_ == mount.type_
        	options_match(candidate, mount.options)
        	regex.match(replace(candidate.source, "$(bundle-id)", bundle), mount.source)
        }

        options_match(candidate, options) if {
        	candidate.options == options
        }

        # Newer kernels add flags to the cgroup2 mount that the runtime passes on.
        options_match(candidate, options) if {
        	candidate.type_ == "cgroup"
        	extras := {o | some o in options} - {o | some o in candidate.options}
        	every o in candidate.options {
        		o in options
        	}
        	every o in extras {
        		o in policy_data.runtime.cgroup_extra_options
        	}
        }

        # ---- Storages: the image the guest pulls and the container's volumes, each once...

        storages_match(expected, storages, bundle) if {
        	input.OCI.Root.Path == concat("", ["/run/kata-containers/", bundle, "/rootfs"])
        	volume_storages := [s | some s in storages; s.driver != "image_guest_pull"]
        	count(volume_storages) == count(expected.storages)
        	every storage in storages {
        		storage_allowed(expected, storage, bundle)
        	}
        	count([s | some s in storages; s.driver == "image_guest_pull"]) <= 1
        }

        storage_allowed(expected, storage, bundle) if {
        	storage.driver == "image_guest_pull"
        	some pattern in expected.pull_sources
        	regex.match(pattern, storage.source)
        	storage.fstype == "overlay"
        	storage.fs_group == null
        	storage.shared == false
        	count(storage.options) == 0
        	storage.mount_point == concat("", ["/run/kata-containers/", bundle, "/rootfs"])
        }

        storage_allowed(expected, storage, _) if {
        	some candidate in expected.storages
        	storage.driver == candidate.driver
        	storage.driver_options == candidate.driver_options
        	storage.fstype == candidate.fstype
        	storage.options == candidate.options
        	storage.shared == candidate.shared
        	storage.fs_group == candidate.fs_group
        	regex.match(candidate.source, storage.source)
        	storage_mounted_at(candidate, storage)
        }

        # ...or (AKS) the image's layers as the node pulled them, for an image whose layers cwo hashed: one
        # dm-verity tar device per layer, topmost first, each with the root hash of the registry's bytes; then
        # their overlay as the container's root; then the container's volumes. Nothing else, in this order.
        storages_match(expected, storages, bundle) if {
        	layers := object.get(expected, "layers", [])
        	count(layers) > 0
        	count(storages) == count(layers) + 1 + count(expected.storages)
        	every i, layer in layers {
        		layer_storage_matches(layer, storages[i])
        	}
        	overlay_storage_matches(expected, storages[count(layers)], bundle)
        	every storage in array.slice(storages, count(layers) + 1, count(storages)) {
        		storage.driver != "image_guest_pull"
        		storage_allowed(expected, storage, bundle)
        	}
        }

        # The device's content is pinned by its root hash, whichever device (source) the runtime attaches.
        layer_storage_matches(layer, storage) if {
        	storage.driver == "blk"
        	count(storage.driver_options) == 0
        	storage.fstype == "tar"
        	storage.options == layer.options
        	storage.mount_point == layer.mount_point
        	storage.fs_group == null
        	object.get(storage, "shared", false) == false
        }

        overlay_storage_matches(expected, storage, bundle) if {
        	storage.driver == "overlayfs"
        	count(storage.driver_options) == 0
        	storage.source == "none"
        	storage.fstype == "fuse3.kata-overlay"
        	storage.options == expected.layer_overlay_options
        	storage.mount_point == concat("", ["/run/kata-containers/shared/containers/", bundle, "/rootfs"])
        	storage.mount_point == input.OCI.Root.Path
        	storage.fs_group == null
        	object.get(storage, "shared", false) == false
        }

        # A storage of the image's host-pulled layers (for explanations; storages_match pins their order).
        image_layer_storage(expected, storage, bundle) if {
        	some layer in object.get(expected, "layers", [])
        	layer_storage_matches(layer, storage)
        }

        image_layer_storage(expected, storage, bundle) if {
        	count(object.get(expected, "layers", [])) > 0
        	overlay_storage_matches(expected, storage, bundle)
        }

        # A block device is mounted where its address says; a memory-backed one under the sandbox's ephemeral folder.
        storage_mounted_at(candidate, storage) if {
        	candidate.driver == "blk"
        	storage.mount_point == concat("", [policy_data.runtime.block_mount_parent, base64url.encode(storage.source)])
        }

        storage_mounted_at(candidate, storage) if {
        	candidate.driver != "blk"
        	regex.match(candidate.mount_point, storage.mount_point)
        }

        # ---- The root: /run/kata-containers/<bundle>/rootfs where the guest pulls the image, or
        # /run/kata-containers/shared/containers/<bundle>/rootfs where the node's layers are overlaid (the
        # storages say which may be used); <bundle> names the container's copied files.

        bundle_id(root) := bundle if {
        	parts := split(root, "/")
        	count(parts) == 5
        	concat("/", [parts[0], parts[1], parts[2]]) == "/run/kata-containers"
        	parts[4] == "rootfs"
        	bundle := parts[3]
        	regex.match("^[a-z0-9][a-z0-9.-]*$", bundle)
        }

        bundle_id(root) := bundle if {
        	parts := split(root, "/")
        	count(parts) == 7
        	concat("/", [parts[0], parts[1], parts[2], parts[3], parts[4]]) == "/run/kata-containers/shared/containers"
        	parts[6] == "rootfs"
        	bundle := parts[5]
        	regex.match("^[a-z0-9][a-z0-9.-]*$", bundle)
        }

        # ---- Exec: a listed command, in a container that exists, with that container's process fields.

        ExecProcessRequest if {
        	input.string_user == null
        	process := input.process
        	process.SelinuxLabel == ""
        	process.ApparmorProfile == ""
        	process.Capabilities == null
        	expected := policy_data.containers[created_as(input.container_id)]
        	process_in_exec_list(expected, process)
        	process_matches(expected, process, false)
        }

        # Probe and hook commands run as the kubelet runs them, with the container's terminal setting...
        process_in_exec_list(expected, process) if {
        	process.Args in expected.exec
        	process.Terminal == expected.terminal
        }

        # ...policy.exec commands interactively (kubectl exec -it), with any.
        process_in_exec_list(_, process) if {
        	process.Args in policy_data.exec
        }

        RemoveContainerRequest := {"allowed": true, "ops": ops} if {
        	key := concat("", ["container-", input.container_id])
        	ops := [{"op": "remove", "path": concat("/", ["/pstate", key])} | key in object.keys(data.pstate)]
        }

        # ---- The sandbox VM itself.

        CreateSandboxRequest if {
        	input.guest_hook_path == ""
        	count(input.kernel_modules) == 0
        	input.sandbox_pidns == false
        	every storage in input.storages {
        		storage in policy_data.runtime.sandbox_storages
        	}
        }

        # ---- Files the runtime copies in: only the pod's copied files (<container id>-<16 chars>-<name>), only
        # regular files, directories and relative symlinks below them, never "..".

        CopyFileRequest if {
        	input.file_type in {"Regular", "Directory"}
        	copy_target_allowed(input.path, "(/.+)?")
        }

        CopyFileRequest if {
        	input.file_type == "Symlink"
        	copy_target_allowed(input.path, "/.+")
        	not startswith(input.symlink_target, "/")
        	not has_parent_step(input.symlink_target)
        }

        # Agents older than the pre-processed request (file_type, symlink_target) send the message itself: its
        # mode says the type; symlinks are refused, their target being in the raw data.
        CopyFileRequest if {
        	not "file_type" in object.keys(input)
        	bits.and(input.file_mode, 61440) in {32768, 16384}
        	copy_target_allowed(input.path, "(/.+)?")
        }

        copy_target_allowed(path, suffix) if {
        	not has_parent_step(path)
        	regex.match(concat("", ["^", policy_data.runtime.copied_file, suffix, "$"]), path)
        }

        has_parent_step(path) if {
        	regex.match("(^|/)\\.\\.($|/)", path)
        }

        # ---- The pod network, as the runtime configures it: no loopback, no raw flags beyond NOARP.

        UpdateInterfaceRequest if {
        	interface := input.interface
        	bits.and(interface.raw_flags, bits.negate(policy_data.runtime.network.interface_flags)) == 0
        	interface.name != "lo"
        	interface.hwAddr != "00:00:00:00:00:00"
        }

        UpdateRoutesRequest if {
        	every route in input.routes.Routes {
        		route.device != "lo"
        		not loopback(route.source)
        	}
        }

        AddARPNeighborsRequest if {
        	every neighbor in input.neighbors.ARPNeighbors {
        		neighbor.device != "lo"
        		neighbor.toIPAddress.mask == ""
        		not loopback(neighbor.toIPAddress.address)
        		neighbor.state in policy_data.runtime.network.neighbor_states
        		bits.and(neighbor.flags, bits.negate(policy_data.runtime.network.neighbor_flags)) == 0
        	}
        }

        loopback(address) if {
        	some pattern in policy_data.runtime.network.loopback
        	regex.match(pattern, address)
        }

        # ---- Container output (kubectl logs), as policy.logs says.

        ReadStreamRequest if {
        	policy_data.logs == true
        }

        """#
}
