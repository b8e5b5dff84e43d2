import KubernetesClient

/// The checks behind a verdict of the generated policy, each a Rego query over the same rules, so that
/// `cwo policy explain` can say which one failed and on which field. A check passes when its query is
/// true, or (for `offending` checks) an empty list; otherwise the query's value names what was refused.
public enum PolicyExplanation {
    public struct Check: Sendable, Hashable {
        public var name: String
        /// The request field the check reads.
        public var field: String
        public var query: String
        /// The query lists the offending elements (passes when empty) rather than answering true.
        public var offending: Bool
    }

    static let rules = "data.agent_policy."

    /// The checks as rules `explain_<index>` to append to the policy (engines evaluate rules, not every query):
    /// true or false, or the list of offending elements.
    public static func rules(_ checks: [Check]) -> String {
        checks.enumerated().map { index, check in
            check.offending
                ? "explain_\(index) := \(check.query)\n"
                : "default explain_\(index) := false\n\nexplain_\(index) if {\n\t\(check.query)\n}\n"
        }.joined(separator: "\n")
    }

    /// The template container the request claims to be (by CRI type and container name).
    static let claimed = #"[c | some c in data.agent_policy.policy_data.containers; c.cri_type == input.OCI.Annotations["io.kubernetes.cri.container-type"]; c.name == object.get(input.OCI.Annotations, "io.kubernetes.cri.container-name", "")][0]"#

    static let bundle = rules + "bundle_id(input.OCI.Root.Path)"

    /// The checks of one request type; empty for a request the policy allows or denies whatever it says.
    public static func checks(for endpoint: String) -> [Check] {
        let c = claimed
        func check(_ name: String, _ field: String, _ query: String, offending: Bool = false) -> Check {
            Check(name: name, field: field, query: query, offending: offending)
        }
        switch endpoint {
        case "CreateContainerRequest":
            return [
                check("a container of the template (or the pause container) with this CRI type and name", "OCI.Annotations",
                      "count([x | x := \(c)]) == 1"),
                check("no hooks, UID/GID mappings, string user, shared mounts or SELinux label; the runtime's OCI version",
                      "OCI.Hooks, OCI.Linux, string_user, shared_mounts, OCI.Version", rules + "create_input_has_no_extras"),
                check("this workload's namespace and pod name, a 64-character sandbox id", "OCI.Annotations[io.kubernetes.cri.sandbox-*]",
                      rules + "sandbox_matches"),
                check("the sandbox name, id and network namespace the pod's first container pinned", "OCI.Annotations, OCI.Linux.Namespaces",
                      "count(\(rules)sandbox_pins) >= 0"),
                check("root path /run/kata-containers/<bundle>/rootfs (…/shared/containers/<bundle>/rootfs with host-pulled layers)",
                      "OCI.Root.Path", "is_string(\(bundle))"),
                check("only the runtime's annotations", "OCI.Annotations", "[k | some k, v in input.OCI.Annotations; not \(rules)annotation_allowed(\(c), k, v, \(bundle))]",
                      offending: true),
                check("the sandbox log directory of this pod", "OCI.Annotations[io.kubernetes.cri.sandbox-log-directory]",
                      rules + "log_directory_matches(\(c), input.OCI.Annotations)"),
                check("the template's image", "OCI.Annotations[io.kubernetes.cri.image-name]", rules + "image_matches(\(c), input.OCI.Annotations)"),
                check("the template's command and args", "OCI.Process.Args", rules + "arguments_match(\(c), input.OCI.Process.Args)"),
                check("environment variables the template, platform or image config set", "OCI.Process.Env",
                      "[v | some v in input.OCI.Process.Env; not \(rules)variable_allowed(\(c), v)]", offending: true),
                check("working directory", "OCI.Process.Cwd", "input.OCI.Process.Cwd == \(c).cwd"),
                check("UID", "OCI.Process.User.UID", "input.OCI.Process.User.UID == \(c).uid"),
                check("GID", "OCI.Process.User.GID", "input.OCI.Process.User.GID == \(c).gid"),
                check("additional GIDs", "OCI.Process.User.AdditionalGids",
                      "{g | some g in input.OCI.Process.User.AdditionalGids} == {g | some g in \(c).additional_gids}"),
                check("no-new-privileges", "OCI.Process.NoNewPrivileges", "input.OCI.Process.NoNewPrivileges == \(c).no_new_privileges"),
                check("terminal", "OCI.Process.Terminal", "input.OCI.Process.Terminal == \(c).terminal"),
                check("AppArmor profile", "OCI.Process.ApparmorProfile", "input.OCI.Process.ApparmorProfile in \(rules)policy_data.runtime.apparmor_profiles"),
                check("all five capability sets", "OCI.Process.Capabilities", rules + "capabilities_match(\(c).capabilities, input.OCI.Process.Capabilities)"),
                check("namespaces, sysctls, masked and read-only paths, seccomp", "OCI.Linux", rules + "linux_matches(\(c), input.OCI.Linux)"),
                check("read-only root", "OCI.Root.Readonly", "input.OCI.Root.Readonly == \(c).readonly_root"),
                check("sandbox PID namespace", "sandbox_pidns", "input.sandbox_pidns == \(rules)policy_data.share_process_namespace"),
                check("mounts of the runtime and the template's volumes", "OCI.Mounts",
                      "[m.destination | some m in input.OCI.Mounts; not \(rules)mount_ok(\(c), m, \(bundle))]", offending: true),
                check("each mount once", "OCI.Mounts", rules + "mounts_match(\(c), input.OCI.Mounts, \(bundle))"),
                check("storages of the image (guest-pulled, or host-pulled layers with cwo's root hashes) and the template's volumes", "storages",
                      "[s.driver | some s in input.storages; not \(rules)storage_allowed(\(c), s, \(bundle)); not \(rules)image_layer_storage(\(c), s, \(bundle))]",
                      offending: true),
                check("as many storages as the template's volumes need (image layers first, in order, then their overlay)", "storages",
                      rules + "storages_match(\(c), input.storages, \(bundle))"),
                check("devices of the template", "devices, OCI.Linux.Devices", rules + "devices_match(\(c), input.devices, input.OCI.Linux.Devices)"),
            ]
        case "ExecProcessRequest":
            let e = rules + "policy_data.containers[\(rules)created_as(input.container_id)]"
            return [
                check("a container the policy let in and that still exists", "container_id", "is_number(\(rules)created_as(input.container_id))"),
                check("a command of the container's exec probes and hooks, or of policy.exec", "process.Args",
                      "\(rules)process_in_exec_list(\(e), input.process)"),
                check("no string user, SELinux label, AppArmor profile or capabilities", "string_user, process",
                      #"[input.string_user, input.process.SelinuxLabel, input.process.ApparmorProfile, input.process.Capabilities] == [null, "", "", null]"#),
                check("the container's user, cwd, env and no-new-privileges", "process", rules + "process_matches(\(e), input.process, false)"),
            ]
        case "CopyFileRequest":
            return [check("a regular file, directory or relative symlink below the pod's copied files, without ..", "path, file_type, symlink_target",
                          rules + "CopyFileRequest")]
        default:
            return [check("the policy's rule for \(endpoint)", "(the whole request)", rules + endpoint + " == true")]
        }
    }
}
