/// The Rego rules of a generated agent policy. `policy_data` (the workload's facts) follows them.
///
/// Written for the agent's engine (regorus, Rego v0 syntax with the future keywords imported), in the
/// layout of the AKS rules: one `default` per agent request, then rules that can only widen a default.
enum PolicyRules {
    /// Requests allowed whatever their content, as in the AKS rules (process lifecycle and stats).
    static let allowedByDefault = [
        "DestroySandboxRequest", "GetOOMEventRequest", "GuestDetailsRequest", "OnlineCPUMemRequest", "RemoveContainerRequest",
        "RemoveStaleVirtiofsShareMountsRequest", "SignalProcessRequest", "StartContainerRequest", "StatsContainerRequest",
        "TtyWinResizeRequest", "UpdateInterfaceRequest", "UpdateRoutesRequest", "WaitProcessRequest",
    ]

    /// Denied unless a rule below allows it. Includes every request the agent knows that the AKS rules
    /// leave without a default, so those get a clean "denied" instead of an evaluation error.
    static let deniedByDefault = [
        "AddARPNeighborsRequest", "AddSwapRequest", "AddSwapPathRequest", "CloseStdinRequest", "CopyFileRequest",
        "CreateContainerRequest", "CreateSandboxRequest", "ExecProcessRequest", "GetDiagnosticDataRequest",
        "GetIPTablesRequest", "GetMetricsRequest", "GetVolumeStatsRequest", "ListInterfacesRequest", "ListRoutesRequest",
        "MemHotplugByProbeRequest", "PauseContainerRequest", "PullImageRequest", "ReadStreamRequest", "ReseedRandomDevRequest",
        "ResizeVolumeRequest", "ResumeContainerRequest", "SetGuestDateTimeRequest", "SetIPTablesRequest", "SetPolicyRequest",
        "StartTracingRequest", "StopTracingRequest", "UpdateContainerRequest", "UpdateEphemeralMountsRequest",
        "WriteStreamRequest",
    ]

    static var defaults: String {
        let allowed = allowedByDefault.map { "default \($0) := true" }
        let denied = deniedByDefault.map { "default \($0) := false" }
        return (allowed + denied + ["default AllowRequestsFailingPolicy := false"]).joined(separator: "\n")
    }

    static let header = """
        package agent_policy

        import future.keywords.every
        import future.keywords.in

        """

    /// Every request allowed: what `mode: AllowAll` (with `allowInsecure`) produces.
    static var allowAll: String {
        header + "\n" + (allowedByDefault + deniedByDefault).sorted().map { "default \($0) := true" }.joined(separator: "\n")
            + "\ndefault AllowRequestsFailingPolicy := false\n"
    }

    static let rules = """
        # The sandbox: no guest hooks, no kernel modules, no shared PID namespace.
        CreateSandboxRequest {
        \tinput.sandbox_pidns == false
        \tinput.guest_hook_path == ""
        \tcount(input.kernel_modules) == 0
        }

        # A container is allowed when it is one the pod template declares (or the pod's pause container).
        CreateContainerRequest {
        \tsome container in policy_data.containers
        \tallow_container(container)
        }

        allow_container(container) {
        \tcontainer.kind == "sandbox"
        \tannotations := input.OCI.Annotations
        \tannotations["io.kubernetes.cri.container-type"] == "sandbox"
        \tannotations["io.kubernetes.cri.sandbox-namespace"] == policy_data.namespace
        \tnot annotations["io.kubernetes.cri.container-name"]
        \tinput.OCI.Process.Args == container.command
        }

        allow_container(container) {
        \tcontainer.kind == "container"
        \tannotations := input.OCI.Annotations
        \tannotations["io.kubernetes.cri.container-type"] == "container"
        \tannotations["io.kubernetes.cri.sandbox-namespace"] == policy_data.namespace
        \tannotations["io.kubernetes.cri.container-name"] == container.name
        \tannotations["io.kubernetes.cri.image-name"] in container.images
        \tallow_command(container)
        \tallow_capabilities(container)
        \tevery variable in input.OCI.Process.Env {
        \t\tallow_env(variable, container)
        \t}
        }

        # A container whose template sets `command` runs exactly command + args.
        allow_command(container) {
        \tcontainer.command == null
        }

        allow_command(container) {
        \tcontainer.command != null
        \tinput.OCI.Process.Args == container.command
        }

        # Capabilities beyond the runtime defaults (and the template's `capabilities.add`) only for a
        # container the template declares privileged.
        allow_capabilities(container) {
        \tcontainer.privileged == true
        }

        allow_capabilities(container) {
        \tcontainer.privileged == false
        \tnot input.OCI.Process.Capabilities.Bounding
        }

        allow_capabilities(container) {
        \tcontainer.privileged == false
        \tevery capability in input.OCI.Process.Capabilities.Bounding {
        \t\tcapability in container.capabilities
        \t}
        }

        # An environment variable is allowed when the template declares it with this exact value...
        allow_env(variable, container) {
        \tvariable in container.env
        }

        # ...or declares it from a ConfigMap, Secret or field (any value)...
        allow_env(variable, container) {
        \tenv_name(variable) in container.env_from
        }

        # ...or it is not a literal of the template and is allowed by name (policy.allowedEnvVars and
        # the image-config names) or injected by the platform (service links, HOSTNAME, workload identity).
        allow_env(variable, container) {
        \tname := env_name(variable)
        \tnot name in container.env_names
        \tname in policy_data.env_names
        }

        allow_env(variable, container) {
        \tnot env_name(variable) in container.env_names
        \tsome pattern in policy_data.env_regex
        \tregex.match(pattern, variable)
        }

        env_name(variable) := name {
        \tname := split(variable, "=")[0]
        }

        # Only the exact commands of exec probes, lifecycle hooks and policy.exec.commands.
        ExecProcessRequest {
        \tsome command in policy_data.exec_commands
        \tinput.process.Args == command
        }

        # Container output (kubectl logs), as policy.logs says.
        ReadStreamRequest {
        \tpolicy_data.logs == true
        }

        # Files the runtime copies into the VM (mounted ConfigMaps, Secrets, /etc/hosts): only under the
        # shared containers folder.
        CopyFileRequest {
        \tstartswith(input.path, "/run/kata-containers/shared/containers/")
        \tnot contains(input.path, "/../")
        }

        """
}
