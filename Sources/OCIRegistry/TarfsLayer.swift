import CompressNIO
import Crypto
import NIOCore

/// One image layer as the AKS node (`kata-cc`, tardev snapshotter) hands it to the guest: a dm-verity
/// protected block device holding the decompressed layer tar with the tarfs index appended.
public struct TarfsLayer: Sendable, Hashable, Codable {
    /// `sha256:<hex>` of the decompressed tar (the image config's `rootfs.diff_ids` entry, checked
    /// against the bytes): the layer's chain ID, hence its name on the node, is made from these.
    public var diffID: String
    /// The dm-verity root hash of tar + index, lowercase hex: the `root-hash` option the agent mounts with.
    public var rootHash: String

    public init(diffID: String, rootHash: String) {
        self.diffID = diffID
        self.rootHash = rootHash
    }
}

/// Why a layer's root hash could not be computed: the blob is not what the node could mount.
public struct TarfsLayerError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// Computes a gzip layer's `TarfsLayer` while its compressed bytes stream by, as the node does it: gunzip
/// (one gzip member: the node's decoder reads no further), append the tarfs index, hash with dm-verity.
/// Also checks the blob's own digest. Nothing but tree metadata is kept, whatever the layer's size.
struct TarfsLayerHasher {
    private let inflater: ZlibDecompressor
    private var window: ByteBuffer
    private var blobDigest = SHA256()
    private var tarDigest = SHA256()
    private var indexer = TarfsIndexer()
    private var verity = DmVerityHasher()
    /// The gzip member ended (zlib verified its trailer).
    private var ended = false

    init() throws(TarfsLayerError) {
        do {
            inflater = try ZlibDecompressor(algorithm: .gzip)
        } catch {
            throw TarfsLayerError(message: "cannot start a gzip decoder: \(error)")
        }
        window = ByteBufferAllocator().buffer(capacity: 256 * 1024)
    }

    /// The next compressed bytes of the blob.
    mutating func update(compressed chunk: ByteBuffer) throws(TarfsLayerError) {
        chunk.withUnsafeReadableBytes { blobDigest.update(bufferPointer: $0) }
        var input = chunk
        while input.readableBytes > 0 {
            guard !ended else {
                throw TarfsLayerError(message: "the layer holds data after its first gzip member, which the node's decoder does not read")
            }
            do {
                try inflater.inflate(from: &input, to: &window)
                // A normal return with input left means zlib reached the member's end.
                if input.readableBytes > 0 { ended = true }
            } catch let error as CompressNIOError where error == .bufferOverflow {
                // The window is full: hand it on, go on decoding.
            } catch let error as CompressNIOError where error == .inputBufferOverflow {
                // zlib wants more input.
            } catch {
                throw TarfsLayerError(message: "the layer is not valid gzip: \(error)")
            }
            try drain()
        }
    }

    /// Hands the decompressed bytes in the window to the digest, the tar indexer and dm-verity.
    private mutating func drain() throws(TarfsLayerError) {
        guard window.readableBytes > 0 else { return }
        var failure: TarfsIndexer.Malformed?
        do {
            // A second reference to the buffer (not a copy of its bytes), so that the closure may update
            // the hashers of self; gone before `clear`, so the window is reused, not reallocated.
            let decoded = window
            decoded.withUnsafeReadableBytes { bytes in
                tarDigest.update(bufferPointer: bytes)
                verity.update(bytes)
                do throws(TarfsIndexer.Malformed) { try indexer.update(bytes) } catch { failure = error }
            }
        }
        window.clear()
        if let failure { throw TarfsLayerError(message: "the layer tar cannot be indexed as the node does: \(failure.message)") }
    }

    /// The layer's facts once the whole blob went through `update`: checked against the blob's digest
    /// and the diff ID the image config states.
    mutating func finish(digest: String, diffID: String) throws(TarfsLayerError) -> TarfsLayer {
        let blob = "sha256:" + DmVerityHasher.hex(Array(blobDigest.finalize()))
        guard blob == digest else { throw TarfsLayerError(message: "the blob's bytes have digest \(blob), not \(digest)") }
        if !ended {
            // zlib answers "stream end" again for any byte after the member's end; anything else means the
            // member is incomplete.
            var probe = ByteBufferAllocator().buffer(capacity: 1)
            probe.writeInteger(UInt8(0))
            var scratch = ByteBufferAllocator().buffer(capacity: 64)
            let complete = (try? inflater.inflate(from: &probe, to: &scratch)) != nil && probe.readableBytes == 1
            guard complete else { throw TarfsLayerError(message: "the layer's gzip stream is truncated") }
        }
        let tar = "sha256:" + DmVerityHasher.hex(Array(tarDigest.finalize()))
        guard tar == diffID else {
            throw TarfsLayerError(message: "the decompressed layer has digest \(tar), not the diff ID \(diffID) the image config states")
        }
        return try Self.finish(indexer: indexer, verity: verity, diffID: tar)
    }

    /// The root hash of an uncompressed layer tar (what the node makes of a gzip layer once decompressed).
    static func layer(tar: [UInt8]) throws(TarfsLayerError) -> TarfsLayer {
        var indexer = TarfsIndexer()
        var verity = DmVerityHasher()
        do { try indexer.update(tar) } catch { throw TarfsLayerError(message: error.message) }
        verity.update(tar)
        return try finish(indexer: indexer, verity: verity, diffID: "sha256:" + DmVerityHasher.hex(Array(SHA256.hash(data: tar))))
    }

    /// The tar with the index appended: the bytes of the node's layer device (before its hash tree).
    static func device(tar: [UInt8]) throws(TarfsLayerError) -> [UInt8] {
        var indexer = TarfsIndexer()
        do {
            try indexer.update(tar)
            return try tar + indexer.index()
        } catch {
            throw TarfsLayerError(message: error.message)
        }
    }

    private static func finish(indexer: TarfsIndexer, verity: DmVerityHasher, diffID: String) throws(TarfsLayerError) -> TarfsLayer {
        var verity = verity
        do {
            verity.update(try indexer.index())
            return TarfsLayer(diffID: diffID, rootHash: try verity.finalize())
        } catch let error as TarfsIndexer.Malformed {
            throw TarfsLayerError(message: "the layer tar cannot be indexed as the node does: \(error.message)")
        } catch {
            throw TarfsLayerError(message: "\(error)")
        }
    }
}
