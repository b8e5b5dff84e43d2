import Crypto
import KubernetesClient

/// What a controller last meant a child object to be, remembered on the child itself as a digest in one
/// annotation (the compact cousin of kubectl's `last-applied-configuration`).
///
/// Containment alone ("does the live object carry every field of the apply body?") cannot see a
/// removal: a live object that still has the field the controller stopped setting contains everything.
/// Comparing the digest of the intent with the one the child carries can: any change of intent, a
/// removal included, is a write; server-side apply of the whole new intent then drops the fields the
/// field manager owned and no longer sets. Containment still catches hand edits of owned fields, and a
/// child whose digest matches and which contains the intent costs nothing, after a restart too.
public struct AppliedIntent: Sendable {
    /// The annotation that carries the digest (e.g. `example.com/applied-intent`).
    public let annotation: String
    /// The form of a body its digest is taken of: the body itself, or one with large values replaced by
    /// digests of their own (any change of such a value still changes the digest), so that stamping costs
    /// a hash of the body's shape, not of every byte of those values again.
    let condense: @Sendable (JSONValue) -> JSONValue

    public init(annotation: String, condense: @escaping @Sendable (JSONValue) -> JSONValue = { $0 }) {
        self.annotation = annotation
        self.condense = condense
    }

    public enum Decision: Sendable, Equatable {
        /// The child does not exist.
        case create
        /// The intent differs from the one the child was last written with (a field added, changed or removed).
        case intentChanged
        /// The intent is the same, but the live child lost or changed a field of it (a hand edit).
        case drifted(field: String)
        /// Nothing to write.
        case upToDate

        public var needsWrite: Bool { self != .upToDate }
    }

    /// `body` with the digest of its content in `metadata.annotations[annotation]`. The digest covers the
    /// condensed body without the annotation, as canonical JSON (sorted keys), so it is the same in every
    /// process.
    public func stamp(_ body: JSONValue) -> JSONValue {
        stampWithCondensed(body).body
    }

    /// `stamp(body)`, and the condensed body stamped alike (what a cache that condenses objects the same
    /// way holds of it), from one condensing.
    public func stampWithCondensed(_ body: JSONValue) -> (body: JSONValue, condensed: JSONValue) {
        let condensed = unstamped(condense(body))
        let digest = JSONValue.string(Self.digest(condensed))
        return (stamping(body, digest), stamping(condensed, digest))
    }

    /// The digest of `body` taken without condensing it: what a controller that did not condense (an
    /// older version of it) stamped on the same intent.
    public func uncondensedDigest(of body: JSONValue) -> String {
        Self.digest(unstamped(body))
    }

    /// What the digest covers: the body without its stamp (nor an annotation map left empty by that).
    private func unstamped(_ body: JSONValue) -> JSONValue {
        var unstamped = body
        unstamped["metadata"]?["annotations"]?[annotation] = nil
        if unstamped[path: ["metadata", "annotations"]]?.objectValue?.isEmpty == true { unstamped["metadata"]?["annotations"] = nil }
        return unstamped
    }

    private func stamping(_ body: JSONValue, _ digest: JSONValue) -> JSONValue {
        var stamped = body
        var metadata = stamped["metadata"]?.objectValue ?? [:]
        var annotations = metadata["annotations"]?.objectValue ?? [:]
        annotations[annotation] = digest
        metadata["annotations"] = .object(annotations)
        stamped["metadata"] = .object(metadata)
        return stamped
    }

    /// The digest a (stamped) object carries.
    public func digest(of object: JSONValue?) -> String? {
        object?[path: ["metadata", "annotations", annotation]]?.stringValue
    }

    /// What to do for `desired` (stamped) given the live child (nil: it does not exist).
    ///
    /// `verified`: the live child's spec was already found to contain the intent its digest names (when
    /// it was read whole) and has not changed since; `live` may then carry a summary of its spec, and
    /// only the digest and the metadata are compared.
    /// `olderDigest`: the digest an older version of the controller, one that did not condense, stamped on
    /// this same intent (`uncondensedDigest(of:)` of the full body): a child carrying it is decided as if
    /// stamped alike, so that it is not rewritten for its stamp alone (and if it drifted, the write
    /// carries the current stamp).
    public func decide(desired: JSONValue, live: JSONValue?, verified: Bool = false, olderDigest: String? = nil) -> Decision {
        guard let live else { return .create }
        var desired = desired
        let liveDigest = digest(of: live)
        if liveDigest != digest(of: desired) {
            guard let liveDigest, liveDigest == olderDigest else { return .intentChanged }
            desired["metadata"]?["annotations"]?[annotation] = .string(liveDigest)
        }
        if verified {
            let metadata: JSONValue = ["metadata": desired["metadata"] ?? [:]]
            if let field = AppliedState.difference(live, metadata) { return .drifted(field: field) }
            return .upToDate
        }
        var fields = desired
        // Items of a list response carry no apiVersion/kind; they name the type, not a field.
        fields["apiVersion"] = nil
        fields["kind"] = nil
        if let field = AppliedState.difference(live, fields) { return .drifted(field: field) }
        return .upToDate
    }

    /// Lowercase hex SHA-256 of the canonical JSON of `value`.
    public static func digest(_ value: JSONValue) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16 << 10)
        value.serialize(into: &bytes)
        return SHA256.hash(data: bytes).hexString
    }
}

extension Sequence where Element == UInt8 {
    /// Lowercase hex, two digits a byte, in a string of exactly that size (a digest's hex is kept per workload).
    public var hexString: String {
        let bytes = Array(self)
        return String(unsafeUninitializedCapacity: bytes.count * 2) { buffer in
            let digits: StaticString = "0123456789abcdef"
            for (offset, byte) in bytes.enumerated() {
                buffer[2 * offset] = digits.utf8Start[Int(byte >> 4)]
                buffer[2 * offset + 1] = digits.utf8Start[Int(byte & 0x0F)]
            }
            return bytes.count * 2
        }
    }
}
