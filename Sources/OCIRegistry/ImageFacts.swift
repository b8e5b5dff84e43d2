/// What the registry says about one image reference for `linux/amd64`: the digest it resolves to and
/// the parts of the image config that decide the container's process.
public struct ImageFacts: Sendable, Hashable, Codable {
    /// The digest the reference resolves to (an index's, when the reference names an index): what a
    /// Deployment runs as `repository@digest` to get exactly these bytes.
    public var digest: String
    /// The `linux/amd64` image manifest's digest (equal to `digest` when there is no index).
    public var manifestDigest: String
    public var entrypoint: [String]?
    public var cmd: [String]?
    /// `NAME=value`, in the image config's order.
    public var env: [String]
    /// As the config writes it: empty, `uid`, `uid:gid`, `name` or `name:group`.
    public var user: String
    /// Empty when the image sets none.
    public var workingDir: String
    /// Layer digests, lowest first.
    public var layers: [String]
    /// The layers as the AKS node mounts them (dm-verity root hashes), lowest first; nil when not computed
    /// (guest-pull platforms do not need them, and facts files written before them lack the field).
    public var tarfsLayers: [TarfsLayer]?

    public init(digest: String, manifestDigest: String, entrypoint: [String]? = nil, cmd: [String]? = nil, env: [String] = [],
                user: String = "", workingDir: String = "", layers: [String] = [], tarfsLayers: [TarfsLayer]? = nil) {
        self.digest = digest
        self.manifestDigest = manifestDigest
        self.entrypoint = entrypoint
        self.cmd = cmd
        self.env = env
        self.user = user
        self.workingDir = workingDir
        self.layers = layers
        self.tarfsLayers = tarfsLayers
    }
}
