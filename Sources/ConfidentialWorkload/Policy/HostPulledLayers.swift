#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import KubernetesClient
import OCIRegistry

/// What CreateContainer carries for an image whose layers the AKS node pulled (`kata-cc` with the tardev
/// snapshotter): one read-only tar block device per layer, topmost first, each mounted with dm-verity and
/// the root hash of its tar + index; then the overlay of them as the container's root.
///
/// The layer names and options are the ones the snapshotter gives containerd (a layer is named by the
/// SHA-256 of its chain ID) and the runtime forwards unchanged; the root hashes are cwo's own, from the
/// registry's bytes, so a layer device with other content cannot be mounted under the policy.
public enum HostPulledLayers {
    /// Where the snapshotter keeps layer devices on the node (the overlay's `layer-src-prefix`).
    static let nodeLayerFolder = "/var/lib/containerd/io.containerd.snapshotter.v1.tardev/layers"
    /// Where the agent mounts each layer in the guest, by name.
    static let guestLayerFolder = "/run/kata-containers/sandbox/layers/"
    static let optionPrefix = "io.katacontainers.fs-opt."
    /// The pause image of AKS confidential nodes (genpolicy's): image facts under this reference pin the
    /// pause container's layers. cwo does not resolve it by itself yet; `--image-facts` may carry it.
    public static let aksPauseImage = "mcr.microsoft.com/oss/v2/kubernetes/pause:3.6"

    struct Layer: Equatable {
        /// Lowercase hex SHA-256 of the layer's chain ID.
        var name: String
        var rootHash: String
    }

    /// The layers topmost first (the order the runtime sends them), named from their chain IDs:
    /// the first layer's diff ID, then `sha256(<previous chain ID> + " " + <diff ID>)`.
    static func layers(_ tarfs: [TarfsLayer]) -> [Layer] {
        var chainID = ""
        var layers: [Layer] = []
        for layer in tarfs {
            chainID = chainID.isEmpty ? layer.diffID : "sha256:" + AgentPolicy.sha256Hex(chainID + " " + layer.diffID)
            layers.append(Layer(name: AgentPolicy.sha256Hex(chainID), rootHash: layer.rootHash))
        }
        return layers.reversed()
    }

    /// The mount options of one layer device, in the runtime's order.
    static func deviceOptions(_ layer: Layer) -> [String] {
        ["ro", optionPrefix + "block_device=file", optionPrefix + "is-layer", optionPrefix + "root-hash=" + layer.rootHash]
    }

    /// The overlay storage's options exactly as the snapshotter writes them: the node's layer folder, each
    /// layer (name, type and device options, base64), read-write upper layer, the lower directories.
    static func overlayOptions(_ layers: [Layer]) -> [String] {
        let described = layers.map { layer in
            let fields = [layer.name, "tar"] + deviceOptions(layer)
            return optionPrefix + "layer=" + Data(fields.joined(separator: ",").utf8).base64EncodedString()
        }
        return [optionPrefix + "layer-src-prefix=" + nodeLayerFolder] + described
            + [optionPrefix + "overlay-rw", "lowerdir=" + layers.map(\.name).joined(separator: ":")]
    }

    /// `policy_data.containers[i].layers`: name, mount point and device options of each layer, topmost first.
    static func policyData(_ layers: [Layer]) -> JSONValue {
        .array(layers.map { layer in
            ["name": .string(layer.name), "mount_point": .string(guestLayerFolder + layer.name),
             "options": RuntimeFacts.strings(deviceOptions(layer))]
        })
    }
}
