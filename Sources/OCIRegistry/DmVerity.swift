import Crypto

/// The dm-verity root hash of a block device image, computed while its bytes stream by, with the
/// parameters the AKS node's tardev snapshotter uses for every layer device (and genpolicy pins): SHA-256,
/// 4096-byte data and hash blocks, a salt of 32 zero bytes, no superblock, format version 1 (each block is
/// hashed as salt ‖ block). The same root hash `veritysetup format --no-superblock --hash=sha256
/// --data-block-size=4096 --hash-block-size=4096 --salt=<64 zeros>` prints for the image.
///
/// Only the root is kept: one partial hash block per tree level, so a layer of any size costs a few pages.
struct DmVerityHasher {
    static let blockSize = 4096
    static let salt = [UInt8](repeating: 0, count: SHA256.byteCount)

    /// The device image is not a whole number of blocks (the tar index always pads it to one).
    struct NotBlockAligned: Error, CustomStringConvertible {
        var size: UInt64
        var description: String { "a dm-verity data device of \(size) bytes is not a whole number of 4096-byte blocks" }
    }

    /// One level of the tree: the hash block being filled, and whether an earlier block of it was already
    /// hashed into the level above (then this level is not the top).
    private struct Level {
        var block: [UInt8] = []
        var passedUp = false
    }

    /// `levels[0]` holds the hashes of data blocks, `levels[i + 1]` those of `levels[i]`'s hash blocks.
    private var levels: [Level] = []
    /// The data block being filled.
    private var pending: [UInt8] = []
    /// Data bytes seen so far.
    private(set) var size: UInt64 = 0
    private let seeded: SHA256

    init() {
        var seeded = SHA256()
        seeded.update(data: Self.salt)
        self.seeded = seeded
        pending.reserveCapacity(Self.blockSize)
    }

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        size += UInt64(bytes.count)
        var rest = bytes[...]
        if !pending.isEmpty {
            let take = min(Self.blockSize - pending.count, rest.count)
            pending.append(contentsOf: rest.prefix(take))
            rest = rest.dropFirst(take)
            guard pending.count == Self.blockSize else { return }
            let hash = digest(pending)
            pending.removeAll(keepingCapacity: true)
            add(hash, level: 0)
        }
        // Whole blocks straight from the caller's buffer; the tail waits for the next bytes.
        while rest.count >= Self.blockSize {
            add(digest(UnsafeRawBufferPointer(rebasing: rest.prefix(Self.blockSize))), level: 0)
            rest = rest.dropFirst(Self.blockSize)
        }
        pending.append(contentsOf: rest)
    }

    mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The root hash, lowercase hex. Every level's last block is padded with zeros, as dm-verity does.
    func finalize() throws(NotBlockAligned) -> String {
        guard pending.isEmpty, size > 0 else { throw NotBlockAligned(size: size) }
        // A single data block has no hash tree: its own hash is the root (veritysetup's answer).
        if levels.count == 1, !levels[0].passedUp, levels[0].block.count == SHA256.byteCount {
            return Self.hex(levels[0].block)
        }
        var tree = self
        var level = 0
        while true {
            let current = tree.levels[level]
            if level == tree.levels.count - 1, !current.passedUp {
                return Self.hex(tree.digest(Self.padded(current.block)))
            }
            tree.levels[level].passedUp = true
            tree.add(tree.digest(Self.padded(current.block)), level: level + 1)
            level += 1
        }
    }

    /// Appends a hash to a level. A full block is hashed into the level above only when the next hash
    /// arrives, so that a level holding a single block at the end is known to be the top.
    private mutating func add(_ hash: [UInt8], level: Int) {
        if level == levels.count { levels.append(Level()) }
        if levels[level].block.count == Self.blockSize {
            let full = levels[level].block
            levels[level].block.removeAll(keepingCapacity: true)
            levels[level].passedUp = true
            add(digest(full), level: level + 1)
        }
        levels[level].block.append(contentsOf: hash)
    }

    private func digest(_ block: UnsafeRawBufferPointer) -> [UInt8] {
        var hasher = seeded
        hasher.update(bufferPointer: block)
        return Array(hasher.finalize())
    }

    private func digest(_ block: [UInt8]) -> [UInt8] {
        block.withUnsafeBytes { digest($0) }
    }

    private static func padded(_ block: [UInt8]) -> [UInt8] {
        block + [UInt8](repeating: 0, count: blockSize - block.count)
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
