import Foundation
import NIOCore
import Testing
import TestSupport
@testable import OCIRegistry

/// The dm-verity root hash of a layer as the AKS node's tardev snapshotter computes it, checked against
/// veritysetup (Debian's cryptsetup-bin) on the same bytes, and the tarfs index read back as the guest's
/// tarfs module reads it. The tars are made by GNU tar, as image builders make them.
@Suite("AKS layer root hashes")
struct TarfsLayerTests {
    static let veritysetup = ["/usr/sbin/veritysetup", "/sbin/veritysetup", "/usr/bin/veritysetup"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }
    static let skipMessage: Comment = "veritysetup (Debian cryptsetup-bin) is not installed: scripts/test installs it"

    /// veritysetup's root hash of `device` with the node's parameters (no superblock: the hash tree goes
    /// to a file of its own, and the root hash is printed).
    static func veritysetupRootHash(_ device: [UInt8]) async throws -> String {
        let veritysetup = try #require(Self.veritysetup)
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Data(device).write(to: URL(fileURLWithPath: directory + "/data"))
        let output = try await runCommand([
            veritysetup, "format", "--no-superblock", "--hash=sha256", "--data-block-size=4096", "--hash-block-size=4096",
            "--salt=" + String(repeating: "0", count: 64), directory + "/data", directory + "/hash",
        ])
        let line = try #require(output.split(separator: "\n").first { $0.hasPrefix("Root hash:") })
        return line.dropFirst("Root hash:".count).trimmingCharacters(in: .whitespaces)
    }

    static func temporaryDirectory() throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cwo-tarfs-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return directory
    }

    static func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var generator = SplitMix64(seed: seed)
        var bytes = [UInt8](repeating: 0, count: count)
        bytes.withUnsafeMutableBytes { buffer in
            for index in stride(from: 0, to: count, by: 8) {
                withUnsafeBytes(of: generator.next()) { word in
                    for offset in 0..<min(8, count - index) { buffer[index + offset] = word[offset] }
                }
            }
        }
        return bytes
    }

    // MARK: - dm-verity

    /// One block (no tree), one hash block, exactly a full hash block, two levels, three levels; fed in
    /// chunks that do not fall on block boundaries.
    @Test(.enabled(if: veritysetup != nil, skipMessage), arguments: [1, 2, 127, 128, 129, 300, 16_385])
    func rootHashesAreVeritysetups(blocks: Int) async throws {
        let bytes = Self.randomBytes(blocks * 4096, seed: UInt64(blocks))
        var hasher = DmVerityHasher()
        var offset = 0
        var chunk = 1
        while offset < bytes.count {
            let end = min(bytes.count, offset + chunk)
            bytes[offset..<end].withUnsafeBytes { hasher.update($0) }
            offset = end
            chunk = chunk * 3 % 10_007 + 1
        }
        #expect(try hasher.finalize() == (try await Self.veritysetupRootHash(bytes)))
    }

    @Test func aDeviceOfPartialBlocksIsRefused() {
        var hasher = DmVerityHasher()
        hasher.update([UInt8](repeating: 1, count: 4096 + 512))
        #expect(throws: DmVerityHasher.NotBlockAligned.self) { try hasher.finalize() }
        #expect(throws: DmVerityHasher.NotBlockAligned.self) { try DmVerityHasher().finalize() }
    }

    // MARK: - Layer tars

    /// A file tree as a layer tar made by GNU tar (names sorted, owners and times fixed).
    struct Tree {
        var directories: [String] = []
        var files: [(path: String, content: [UInt8])] = []
        var symlinks: [(path: String, target: String)] = []
        var hardLinks: [(path: String, target: String)] = []
        var fifos: [String] = []
        var format = "gnu"
        /// What tar is asked to archive (top-level names, or "." for a tar with a "./" root entry).
        var members: [String]? = nil

        func tar() async throws -> [UInt8] {
            let directory = try TarfsLayerTests.temporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let root = directory + "/root"
            let manager = FileManager.default
            try manager.createDirectory(atPath: root, withIntermediateDirectories: true)
            for path in directories { try manager.createDirectory(atPath: root + "/" + path, withIntermediateDirectories: true) }
            for file in files {
                try manager.createDirectory(atPath: (root + "/" + file.path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try Data(file.content).write(to: URL(fileURLWithPath: root + "/" + file.path))
            }
            for link in symlinks { try manager.createSymbolicLink(atPath: root + "/" + link.path, withDestinationPath: link.target) }
            for link in hardLinks { try manager.linkItem(atPath: root + "/" + link.target, toPath: root + "/" + link.path) }
            for fifo in fifos { _ = try await runCommand(["mkfifo", root + "/" + fifo]) }
            let top = try members ?? manager.contentsOfDirectory(atPath: root).sorted()
            _ = try await runCommand(["tar", "--format=" + format, "--sort=name", "--owner=1000", "--group=2000", "--numeric-owner",
                                      "--mtime=@1700000000", "-C", root, "-cf", directory + "/layer.tar"] + top)
            return Array(try Data(contentsOf: URL(fileURLWithPath: directory + "/layer.tar")))
        }
    }

    static let longName = "deep/" + String(repeating: "n", count: 120) + ".txt"
    static let longTarget = "/" + String(repeating: "t", count: 130)
    static let ustarPath = String(repeating: "p", count: 90) + "/" + String(repeating: "q", count: 60) + ".txt"

    static let trees: [String: Tree] = [
        // 10240 bytes: not a whole number of 4096-byte blocks.
        "one small file": Tree(files: [("hello.txt", Array("hello\n".utf8))]),
        "everything the index knows": Tree(
            directories: ["etc", "empty", "var/lib"],
            files: [
                ("etc/passwd", Array("root:x:0:0::/root:/bin/sh\n".utf8)), ("bin/tool", randomBytes(70_000, seed: 7)),
                (longName, Array("long\n".utf8)), ("var/lib/.wh..wh..opq", []), ("var/.wh.gone", []),
            ],
            symlinks: [("bin/sh", "tool"), ("far", longTarget)], hardLinks: [("bin/tool-again", "bin/tool")], fifos: ["pipe"]),
        "PAX names": Tree(files: [(longName, Array("pax\n".utf8))], symlinks: [("far", longTarget)], format: "pax"),
        "a ./ root entry": Tree(directories: ["dir"], files: [("dir/a", Array("a".utf8))], members: ["."]),
        // ustar splits a long path into prefix and name.
        "ustar prefix": Tree(files: [(ustarPath, Array("prefixed\n".utf8))], format: "ustar"),
        // Over 128 data blocks: two levels of hashes.
        "many files": Tree(files: (0..<300).map { ("files/f\($0)", randomBytes(3000, seed: UInt64($0))) }),
    ]

    @Test(.enabled(if: veritysetup != nil, skipMessage), arguments: trees.keys.sorted())
    func layerRootHashesAreVeritysetupsOfTarAndIndex(name: String) async throws {
        let tar = try await #require(Self.trees[name]).tar()
        let layer = try TarfsLayerHasher.layer(tar: tar)
        let device = try TarfsLayerHasher.device(tar: tar)
        #expect(device.count % 4096 == 0 && device.count > tar.count)
        #expect(Array(device.prefix(tar.count)) == tar)
        #expect(layer.rootHash == (try await Self.veritysetupRootHash(device)))
        #expect(layer.diffID == TestRegistry.digest(tar))
    }

    /// The index as tarfs reads it: the super block in the last 512 bytes, inode n at
    /// `inode_table_offset + 32 (n - 1)`, the root inode 1, directories as tables of (inode, name offset,
    /// name length, type), file contents and symlink targets where the inodes point.
    struct TarfsReader {
        let device: [UInt8]
        let inodeTable: Int
        let inodeCount: Int

        struct Inode {
            var number: Int
            var mode: Int
            var flags: Int
            var owner: Int
            var group: Int
            var mtime: Int
            var size: Int
            var offset: Int
        }

        init(_ device: [UInt8]) {
            self.device = device
            inodeTable = Self.integer(device, device.count - 512, 8)
            inodeCount = Self.integer(device, device.count - 504, 8)
        }

        static func integer(_ bytes: [UInt8], _ offset: Int, _ length: Int) -> Int {
            (0..<length).reversed().reduce(0) { $0 << 8 | Int(bytes[offset + $1]) }
        }

        func inode(_ number: Int) -> Inode {
            let at = inodeTable + 32 * (number - 1)
            let mtime = Self.integer(device, at + 3, 1) << 32 | Self.integer(device, at + 12, 4)
            return Inode(number: number, mode: Self.integer(device, at, 2), flags: Self.integer(device, at + 2, 1),
                         owner: Self.integer(device, at + 4, 4), group: Self.integer(device, at + 8, 4), mtime: mtime,
                         size: Self.integer(device, at + 16, 8), offset: Self.integer(device, at + 24, 8))
        }

        func entries(_ directory: Inode) -> [(name: String, inode: Int, type: Int)] {
            stride(from: directory.offset, to: directory.offset + directory.size, by: 32).map { at in
                let nameOffset = Self.integer(device, at + 8, 8)
                let name = String(decoding: device[nameOffset..<(nameOffset + Self.integer(device, at + 16, 8))], as: UTF8.self)
                return (name, Self.integer(device, at, 8), Self.integer(device, at + 24, 1))
            }
        }

        func lookup(_ path: String) -> Inode? {
            var current = inode(1)
            for component in path.split(separator: "/") {
                guard current.mode & 0o170000 == 0o040000,
                      let entry = entries(current).first(where: { $0.name == component }) else { return nil }
                current = inode(entry.inode)
            }
            return current
        }

        func contents(_ inode: Inode) -> [UInt8] { Array(device[inode.offset..<(inode.offset + inode.size)]) }
    }

    @Test func theIndexReadsBackAsTheTreeTarfsShows() async throws {
        let tar = try await #require(Self.trees["everything the index knows"]).tar()
        let reader = TarfsReader(try TarfsLayerHasher.device(tar: tar))
        #expect(reader.inodeTable == tar.count)
        // Root, the tar's entries and their implicit parents, each once (the hard link shares its target's).
        let root = reader.inode(1)
        #expect(root.mode == 0o040555)
        #expect(reader.entries(root).map(\.name) == ["bin", "deep", "empty", "etc", "far", "pipe", "var"])

        let passwd = try #require(reader.lookup("etc/passwd"))
        #expect(passwd.mode == 0o100644)
        #expect(reader.contents(passwd) == Array("root:x:0:0::/root:/bin/sh\n".utf8))
        #expect(passwd.owner == 1000 && passwd.group == 2000 && passwd.mtime == 1_700_000_000)
        let tool = try #require(reader.lookup("bin/tool"))
        #expect(reader.contents(tool) == Self.randomBytes(70_000, seed: 7))
        #expect(reader.lookup("bin/tool-again")?.number == tool.number)
        #expect(reader.contents(try #require(reader.lookup(Self.longName))) == Array("long\n".utf8))

        let shortLink = try #require(reader.lookup("bin/sh"))
        #expect(shortLink.mode & 0o170000 == 0o120000)
        #expect(reader.contents(shortLink) == Array("tool".utf8))
        // A target too long for the header is written again after the directory entries.
        let longLink = try #require(reader.lookup("far"))
        #expect(reader.contents(longLink) == Array(Self.longTarget.utf8))
        #expect(longLink.offset > tar.count)

        #expect(try #require(reader.lookup("pipe")).mode & 0o170000 == 0o010000)
        // Whiteouts are character devices 0/0 for overlayfs; the opaque marker flags its directory.
        let gone = try #require(reader.lookup("var/gone"))
        #expect(gone.mode & 0o170000 == 0o020000 && gone.offset == 0)
        #expect(reader.lookup("var/.wh.gone") == nil)
        #expect(try #require(reader.lookup("var/lib")).flags == 1)
        #expect(reader.lookup("var/lib/.wh..wh..opq") == nil)
        #expect(reader.entries(try #require(reader.lookup("var/lib"))).isEmpty)
        // Directory entry types: directory 4, regular 8, symlink 10, fifo 1.
        #expect(reader.entries(root).map(\.type) == [4, 4, 4, 4, 10, 1, 4])
    }

    @Test func aDotRootEntryGivesTheRootItsMode() async throws {
        let tar = try await #require(Self.trees["a ./ root entry"]).tar()
        let reader = TarfsReader(try TarfsLayerHasher.device(tar: tar))
        #expect(reader.inode(1).mode & 0o170000 == 0o040000)
        #expect(reader.contents(try #require(reader.lookup("dir/a"))) == Array("a".utf8))
    }

    @Test func ustarPrefixesAndPaxNamesAreRead() async throws {
        let ustar = try await #require(Self.trees["ustar prefix"]).tar()
        let reader = TarfsReader(try TarfsLayerHasher.device(tar: ustar))
        #expect(reader.contents(try #require(reader.lookup(Self.ustarPath))) == Array("prefixed\n".utf8))
        let pax = try await #require(Self.trees["PAX names"]).tar()
        let paxReader = TarfsReader(try TarfsLayerHasher.device(tar: pax))
        #expect(paxReader.contents(try #require(paxReader.lookup(Self.longName))) == Array("pax\n".utf8))
        #expect(paxReader.contents(try #require(paxReader.lookup("far"))) == Array(Self.longTarget.utf8))
    }

    @Test func brokenTarsAreRefused() async throws {
        let tar = try await #require(Self.trees["one small file"]).tar()
        var badChecksum = tar
        badChecksum[0] ^= 1
        #expect(throws: TarfsLayerError.self) { try TarfsLayerHasher.layer(tar: badChecksum) }
        // Cut inside the file's data.
        #expect(throws: TarfsLayerError.self) { try TarfsLayerHasher.layer(tar: Array(tar.prefix(600))) }
        // Cut inside a header.
        #expect(throws: TarfsLayerError.self) { try TarfsLayerHasher.layer(tar: Array(tar.prefix(1024 + 100))) }
    }

    // MARK: - gzip, as the registry serves layers

    static func gzip(_ bytes: [UInt8]) async throws -> [UInt8] {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Data(bytes).write(to: URL(fileURLWithPath: directory + "/layer.tar"))
        _ = try await runCommand(["gzip", "-n", directory + "/layer.tar"])
        return Array(try Data(contentsOf: URL(fileURLWithPath: directory + "/layer.tar.gz")))
    }

    static func hashStreamed(_ gzip: [UInt8], digest: String? = nil, diffID: String, chunk: Int = 777) throws -> TarfsLayer {
        var hasher = try TarfsLayerHasher()
        for start in stride(from: 0, to: gzip.count, by: chunk) {
            try hasher.update(compressed: ByteBuffer(bytes: gzip[start..<min(gzip.count, start + chunk)]))
        }
        return try hasher.finish(digest: digest ?? TestRegistry.digest(gzip), diffID: diffID)
    }

    @Test func aGzipLayerStreamsToTheRootHashOfItsTar() async throws {
        let tar = try await #require(Self.trees["many files"]).tar()
        let compressed = try await Self.gzip(tar)
        let expected = try TarfsLayerHasher.layer(tar: tar)
        for chunk in [1, 777, 65_536, compressed.count] {
            #expect(try Self.hashStreamed(compressed, diffID: expected.diffID, chunk: chunk) == expected)
        }
    }

    @Test func gzipLayersThatAreNotWhatTheyClaimAreRefused() async throws {
        let tar = try await #require(Self.trees["one small file"]).tar()
        let compressed = try await Self.gzip(tar)
        let diffID = TestRegistry.digest(tar)
        // Another diff ID than the config states, another digest than the manifest states.
        #expect(throws: TarfsLayerError.self) { try Self.hashStreamed(compressed, diffID: TestRegistry.digest([1])) }
        #expect(throws: TarfsLayerError.self) { try Self.hashStreamed(compressed, digest: TestRegistry.digest([1]), diffID: diffID) }
        // Truncated, corrupted, or a second gzip member the node's decoder would not read.
        #expect(throws: TarfsLayerError.self) { try Self.hashStreamed(Array(compressed.dropLast(9)), diffID: diffID) }
        var corrupted = compressed
        corrupted[20] ^= 0xff
        #expect(throws: TarfsLayerError.self) { try Self.hashStreamed(corrupted, diffID: diffID) }
        #expect(throws: TarfsLayerError.self) { try Self.hashStreamed(compressed + compressed, diffID: diffID) }
        #expect(throws: TarfsLayerError.self) { try Self.hashStreamed(tar, diffID: diffID) }
    }
}
