/// The index the AKS node's tardev snapshotter appends to each decompressed layer tar so that the guest's
/// tarfs can mount the tar as a file system: an inode table, directory entries and names after the tar's
/// last byte, padded to 4096 bytes, and a 16-byte "super block" 512 bytes before the end. The layer's
/// dm-verity root hash covers tar and index, so cwo must build the index byte for byte as the node does.
///
/// Reproduces `tarindex::append_index` of microsoft/kata-containers (`src/tardev-snapshotter/tarindex`,
/// with its special handling of long symlink targets) reading the tar as the Rust `tar` crate 0.4.38 the
/// snapshotter is built with reads it, quirks included: intermediate directories a tar does not list get
/// mode 0, a later entry for a path replaces the earlier one (and its children), whiteouts become
/// character devices, hard links share the target's inode, and the index's end offset counts names twice.
/// The tar streams through `update`; only its metadata is kept.
struct TarfsIndexer {
    /// A tar the node would refuse (then no pod could start with this layer), or one cwo does not read.
    struct Malformed: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    // Inode types (the top bits of the mode) and directory entry types, as tarfs defines them.
    static let typeMask: UInt16 = 0o170000
    static let socket: UInt16 = 0o140000
    static let symlink: UInt16 = 0o120000
    static let regular: UInt16 = 0o100000
    static let blockDevice: UInt16 = 0o060000
    static let directory: UInt16 = 0o040000
    static let characterDevice: UInt16 = 0o020000
    static let fifo: UInt16 = 0o010000

    static let alignment: UInt64 = 4096
    static let inodeSize: UInt64 = 32
    static let directoryEntrySize: UInt64 = 32
    /// Long names and PAX records are held in memory; no real layer comes near this.
    static let maxSpecialEntry: UInt64 = 1 << 20

    /// A file system node. A class: hard links share one node, and replacing a path's entry replaces the
    /// node's contents in place, as the snapshotter's shared `Rc<RefCell<Entry>>` does.
    final class Node {
        var offset: UInt64 = 0
        var size: UInt64 = 0
        var children: [[UInt8]: Node] = [:]
        var mode: UInt16 = 0
        var mtime: UInt64 = 0
        var owner: UInt32 = 0
        var group: UInt32 = 0
        var isOpaque = false
        var inode: UInt64 = 0
        var emitted = false

        init(mode: UInt16 = 0) { self.mode = mode }

        func child(_ name: [UInt8]) -> Node {
            if let existing = children[name] { return existing }
            let node = Node()
            children[name] = node
            return node
        }

        /// Children in byte order of their names (the snapshotter keeps them in a `BTreeMap`).
        var sortedChildren: [(name: [UInt8], node: Node)] {
            children.sorted { $0.key.lexicographicallyPrecedes($1.key) }.map { ($0.key, $0.value) }
        }

        func replace(with entry: Node) {
            offset = entry.offset
            size = entry.size
            children = [:]
            mode = entry.mode
            mtime = entry.mtime
            owner = entry.owner
            group = entry.group
            isOpaque = false
            inode = 0
            emitted = false
        }
    }

    private enum State {
        /// Reading the header at `position`.
        case header([UInt8])
        /// Skipping an entry's data and padding.
        case skipping(UInt64)
        /// Reading a GNU long name or link, or PAX records, then skipping `padding`.
        case collecting(Special, [UInt8], remaining: UInt64, padding: UInt64)
        /// Past the archive's end (a zero block): the rest is not read.
        case done
    }

    private enum Special { case longName, longLink, pax }

    private var state = State.header([])
    /// Bytes of the tar seen so far (the whole decompressed layer, also after the end of the archive).
    private(set) var size: UInt64 = 0
    private var root = Node(mode: Self.directory | 0o555)
    private var longName: [UInt8]?
    private var longLink: [UInt8]?
    private var pax: [UInt8]?
    private var paxSize: UInt64?
    /// Symlink targets that do not fit the header, in tar order: written again in the index.
    private var specialLinks: [[UInt8]] = []

    mutating func update(_ bytes: UnsafeRawBufferPointer) throws(Malformed) {
        size += UInt64(bytes.count)
        var rest = bytes[...]
        while !rest.isEmpty {
            switch state {
            case .done:
                return
            case .skipping(let remaining):
                let take = Int(min(remaining, UInt64(rest.count)))
                rest = rest.dropFirst(take)
                state = remaining == UInt64(take) ? .header([]) : .skipping(remaining - UInt64(take))
            case .collecting(let special, var data, let remaining, let padding):
                let take = Int(min(remaining, UInt64(rest.count)))
                data.append(contentsOf: rest.prefix(take))
                rest = rest.dropFirst(take)
                if remaining == UInt64(take) {
                    try collected(special, data)
                    state = padding == 0 ? .header([]) : .skipping(padding)
                } else {
                    state = .collecting(special, data, remaining: remaining - UInt64(take), padding: padding)
                }
            case .header(var header):
                let take = min(512 - header.count, rest.count)
                header.append(contentsOf: rest.prefix(take))
                rest = rest.dropFirst(take)
                if header.count == 512 {
                    try read(header, at: size - UInt64(rest.count) - 512)
                } else {
                    state = .header(header)
                }
            }
        }
    }

    mutating func update(_ bytes: [UInt8]) throws(Malformed) {
        var failure: Malformed?
        bytes.withUnsafeBytes { buffer in
            do throws(Malformed) { try update(buffer) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// One 512-byte header at `position` in the tar.
    private mutating func read(_ header: [UInt8], at position: UInt64) throws(Malformed) {
        if header.allSatisfy({ $0 == 0 }) {
            guard longName == nil, longLink == nil, pax == nil else {
                throw Malformed(message: "the tar ends after a long name or PAX header, before the entry it describes")
            }
            state = .done
            return
        }
        let header = TarHeader(header)
        let sum = header.bytes[..<148].reduce(UInt32(0)) { $0 + UInt32($1) } + header.bytes[156...].reduce(UInt32(0)) { $0 + UInt32($1) } + 8 * 32
        guard let checksum = TarHeader.octal(header.field(148, 8)), UInt32(truncatingIfNeeded: checksum) == sum else {
            throw Malformed(message: "tar header at byte \(position) has a wrong checksum")
        }
        guard var entrySize = TarHeader.number(header.field(124, 12)) else {
            throw Malformed(message: "tar header at byte \(position) has an unreadable size")
        }
        if entrySize == 0, let paxSize { entrySize = paxSize }
        let (rounded, overflow) = entrySize.addingReportingOverflow(511)
        guard !overflow else { throw Malformed(message: "tar header at byte \(position) has an impossible size") }
        let padded = rounded & ~511
        let recognized = header.isGNU || header.isUstar
        let special: Special? = switch header.typeFlag {
        case UInt8(ascii: "L") where recognized: .longName
        case UInt8(ascii: "K") where recognized: .longLink
        case UInt8(ascii: "x") where recognized: .pax
        default: nil
        }
        if let special {
            let already = switch special { case .longName: longName != nil; case .longLink: longLink != nil; case .pax: pax != nil }
            guard !already else { throw Malformed(message: "two long name or PAX headers describe the tar entry at byte \(position)") }
            guard entrySize <= Self.maxSpecialEntry else {
                throw Malformed(message: "the long name or PAX header at byte \(position) is larger than \(Self.maxSpecialEntry) bytes")
            }
            if entrySize == 0 {
                try collected(special, [])
                state = .header([])
            } else {
                state = .collecting(special, [], remaining: entrySize, padding: padded - entrySize)
            }
            return
        }
        guard header.typeFlag != UInt8(ascii: "S") else {
            throw Malformed(message: "the tar entry at byte \(position) is a GNU sparse file, which cwo does not index")
        }
        member(header, headerPosition: position, size: entrySize)
        longName = nil
        longLink = nil
        pax = nil
        paxSize = nil
        state = padded == 0 ? .header([]) : .skipping(padded)
    }

    private mutating func collected(_ special: Special, _ data: [UInt8]) throws(Malformed) {
        switch special {
        case .longName: longName = data
        case .longLink: longLink = data
        case .pax:
            pax = data
            paxSize = Self.paxSize(data)
        }
    }

    /// A member of the archive (not a long name or PAX header), as the snapshotter files it in the tree.
    private mutating func member(_ header: TarHeader, headerPosition: UInt64, size: UInt64) {
        // An unreadable mode skips the entry, whatever its type.
        guard let parsedMode = TarHeader.octal(header.field(100, 8)) else { return }
        var mode = UInt16(truncatingIfNeeded: parsedMode) & 0o777
        let path = entryPath(header)
        let entry = Node()
        switch header.typeFlag {
        case 0, UInt8(ascii: "0"):
            mode |= Self.regular
            entry.size = size
            entry.offset = headerPosition + 512
        case UInt8(ascii: "5"):
            mode |= Self.directory
        case UInt8(ascii: "6"):
            mode |= Self.fifo
        case UInt8(ascii: "3"), UInt8(ascii: "4"):
            mode |= header.typeFlag == UInt8(ascii: "3") ? Self.characterDevice : Self.blockDevice
            // Device numbers exist only in ustar and GNU headers; without them the entry is skipped.
            guard header.isUstar || header.isGNU,
                  let major = TarHeader.octal(header.field(329, 8)), let minor = TarHeader.octal(header.field(337, 8)) else { return }
            entry.offset = UInt64(UInt32(truncatingIfNeeded: minor)) | (UInt64(UInt32(truncatingIfNeeded: major)) << 32)
        case UInt8(ascii: "2"):
            mode |= Self.symlink
            guard let target = linkName(header) else { return }
            // The target is read from the header where it fits; a longer one is written again in the index.
            if header.headerLinkName ?? [] != target {
                specialLinks.append(target)
                entry.offset = 0
            } else {
                entry.offset = headerPosition + 157
            }
            entry.size = UInt64(target.count)
        case UInt8(ascii: "1"):
            if let target = linkName(header) { hardLink(path, to: target) }
            return
        default:
            // FIFOs aside, other types (contiguous files, global PAX headers, unknown ones) are skipped.
            return
        }
        entry.mode = mode
        entry.mtime = TarHeader.number(header.field(136, 12)) ?? 0
        entry.owner = UInt32(truncatingIfNeeded: TarHeader.number(header.field(108, 8)) ?? 0)
        entry.group = UInt32(truncatingIfNeeded: TarHeader.number(header.field(116, 8)) ?? 0)
        file(path, entry)
    }

    /// Files an entry at its path: opaque-directory markers and whiteouts as overlayfs reads them from tarfs.
    private mutating func file(_ name: [UInt8], _ entry: Node) {
        // Names that leave the root are skipped.
        guard var path = Self.cleanPath(name) else { return }
        if let last = path.last {
            if last == Array(".wh..wh..opq".utf8) {
                traverse(path.dropLast()).isOpaque = true
                return
            }
            if last.starts(with: Array(".wh.".utf8)) {
                path[path.count - 1] = Array(last.dropFirst(4))
                let node = traverse(path[...])
                node.children = [:]
                node.mode = (node.mode & ~Self.typeMask) | Self.characterDevice
                node.size = 0
                node.offset = 0
                return
            }
        }
        traverse(path[...]).replace(with: entry)
    }

    private mutating func hardLink(_ name: [UInt8], to target: [UInt8]) {
        guard let targetPath = Self.cleanPath(target) else { return }
        var existing = root
        for component in targetPath { existing = existing.child(component) }
        guard existing.mode & Self.typeMask == Self.regular, let path = Self.cleanPath(name) else { return }
        guard let last = path.last else {
            root = existing
            return
        }
        var parent = root
        for component in path.dropLast() { parent = parent.child(component) }
        parent.children[last] = existing
    }

    private func traverse(_ path: ArraySlice<[UInt8]>) -> Node {
        var node = root
        for component in path { node = node.child(component) }
        return node
    }

    /// The entry's path: a GNU long name (one trailing NUL dropped), else a PAX `path`, else the header's.
    private func entryPath(_ header: TarHeader) -> [UInt8] {
        if let longName { return longName.last == 0 ? Array(longName.dropLast()) : longName }
        if let pax, let value = Self.paxValue(pax, key: "path") { return value }
        return header.headerPath
    }

    /// A link's target: a GNU long link, else a PAX `linkpath`, else the header's; nil when it has none.
    private func linkName(_ header: TarHeader) -> [UInt8]? {
        if let longLink { return longLink.last == 0 ? Array(longLink.dropLast()) : longLink }
        if let pax, let value = Self.paxValue(pax, key: "linkpath") { return value }
        return header.headerLinkName
    }

    /// Components of a path below the root: "" and "." dropped, ".." going up; nil when it leaves the root.
    static func cleanPath(_ name: [UInt8]) -> [[UInt8]]? {
        var components: [[UInt8]] = []
        for component in name.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            switch Array(component) {
            case [], [UInt8(ascii: ".")]: continue
            case [UInt8(ascii: "."), UInt8(ascii: ".")]:
                guard !components.isEmpty else { return nil }
                components.removeLast()
            default: components.append(Array(component))
            }
        }
        return components
    }

    /// PAX records (`<length> <key>=<value>\n`) as the `tar` crate splits them: by newline, stopping at an
    /// empty line, skipping records whose length does not match.
    static func paxRecords(_ data: [UInt8]) -> [(key: [UInt8], value: [UInt8])?] {
        var records: [(key: [UInt8], value: [UInt8])?] = []
        for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            if line.isEmpty { break }
            guard let space = line.firstIndex(of: UInt8(ascii: " ")),
                  let length = Int(String(decoding: line[line.startIndex..<space], as: UTF8.self)),
                  line.count + 1 == length,
                  let equals = line[(space + 1)...].firstIndex(of: UInt8(ascii: "=")) else {
                records.append(nil)
                continue
            }
            records.append((key: Array(line[(space + 1)..<equals]), value: Array(line[(equals + 1)...])))
        }
        return records
    }

    static func paxValue(_ data: [UInt8], key: String) -> [UInt8]? {
        paxRecords(data).lazy.compactMap { $0 }.first { $0.key.elementsEqual(key.utf8) }?.value
    }

    /// The PAX `size`, as the `tar` crate reads it: a malformed record before it, or a bad value, means none.
    static func paxSize(_ data: [UInt8]) -> UInt64? {
        for record in paxRecords(data) {
            guard let record else { return nil }
            guard record.key.elementsEqual("size".utf8) else { continue }
            guard let text = String(validating: record.value, as: UTF8.self) else { return nil }
            return UInt64(text)
        }
        return nil
    }

    /// The index to append to the tar, padding and super block included. Fails on a tar that ends inside
    /// an entry (the node's snapshotter fails on it too).
    func index() throws(Malformed) -> [UInt8] {
        switch state {
        case .done: break
        case .header(let partial) where partial.isEmpty:
            guard longName == nil, longLink == nil, pax == nil else {
                throw Malformed(message: "the tar ends after a long name or PAX header, before the entry it describes")
            }
        default:
            throw Malformed(message: "the tar ends inside an entry (\(size) bytes)")
        }
        let order = try Self.breadthFirst(root)
        let contentsSize = size

        var inodeCount: UInt64 = 0
        for node in order where node.inode == 0 {
            inodeCount += 1
            node.inode = inodeCount
        }
        // Directory entry tables follow the inode table; a node reached twice (a shared one) gets two.
        let stringTableOffset = order.reduce(contentsSize + Self.inodeSize * inodeCount) { offset, node in
            guard node.mode & Self.typeMask == Self.directory else { return offset }
            node.offset = offset
            node.size = Self.directoryEntrySize * UInt64(node.children.count)
            return offset + node.size
        }

        var out: [UInt8] = []
        var symlinkOffset = stringTableOffset
        for node in order where !node.emitted {
            var offset = node.offset
            if node.mode & Self.typeMask == Self.symlink, node.offset == 0 {
                offset = symlinkOffset
                symlinkOffset += node.size
            }
            node.emitted = true
            Self.append(node.mode, to: &out)
            out.append(node.isOpaque ? 1 : 0)
            out.append(UInt8(truncatingIfNeeded: (node.mtime >> 32) & 0xf))
            Self.append(node.owner, to: &out)
            Self.append(node.group, to: &out)
            Self.append(UInt32(truncatingIfNeeded: node.mtime), to: &out)
            Self.append(node.size, to: &out)
            Self.append(offset, to: &out)
        }

        var endOffset = symlinkOffset
        for node in order where node.mode & Self.typeMask == Self.directory {
            for (name, child) in node.sortedChildren {
                Self.append(child.inode, to: &out)
                Self.append(endOffset, to: &out)
                Self.append(UInt64(name.count), to: &out)
                out.append(Self.directoryEntryType(child.mode))
                out.append(contentsOf: [UInt8](repeating: 0, count: 7))
                endOffset += UInt64(name.count)
            }
        }
        for target in specialLinks {
            out.append(contentsOf: target)
            endOffset += UInt64(target.count)
        }
        // The snapshotter counts the names again here, so its end offset lies beyond what it wrote.
        for node in order where node.mode & Self.typeMask == Self.directory {
            for (name, _) in node.sortedChildren {
                out.append(contentsOf: name)
                endOffset += UInt64(name.count)
            }
        }

        let end = (endOffset + Self.alignment - 1) / Self.alignment * Self.alignment
        let superBlock = end + Self.alignment - 512
        out.append(contentsOf: [UInt8](repeating: 0, count: Int(superBlock - contentsSize) - out.count))
        Self.append(contentsSize, to: &out)
        Self.append(inodeCount, to: &out)
        out.append(contentsOf: [UInt8](repeating: 0, count: Int(end + Self.alignment - contentsSize) - out.count))
        return out
    }

    /// Nodes in the order the snapshotter visits them: breadth first from the root, children by name, a
    /// node reached by two paths visited twice. Hard links can make the tree cyclic (the node would never
    /// finish); a bound turns that into an error.
    static func breadthFirst(_ root: Node) throws(Malformed) -> [Node] {
        var order = [root]
        var next = 0
        while next < order.count {
            for (_, child) in order[next].sortedChildren { order.append(child) }
            next += 1
            guard order.count <= 10_000_000 else {
                throw Malformed(message: "the tar's hard links make its directory tree cyclic or too large to index")
            }
        }
        return order
    }

    static func directoryEntryType(_ mode: UInt16) -> UInt8 {
        switch mode & typeMask {
        case socket: 12
        case symlink: 10
        case regular: 8
        case blockDevice: 6
        case directory: 4
        case characterDevice: 2
        case fifo: 1
        default: 0
        }
    }

    static func append<Value: FixedWidthInteger>(_ value: Value, to out: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }
}

/// One 512-byte tar header, read as the `tar` crate 0.4.38 reads it.
struct TarHeader {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func field(_ offset: Int, _ length: Int) -> ArraySlice<UInt8> { bytes[offset..<(offset + length)] }

    var typeFlag: UInt8 { bytes[156] }
    var isUstar: Bool { field(257, 6).elementsEqual("ustar\0".utf8) && field(263, 2).elementsEqual("00".utf8) }
    var isGNU: Bool { field(257, 6).elementsEqual("ustar ".utf8) && field(263, 2).elementsEqual(" \0".utf8) }

    /// `name`, with ustar's `prefix/` in front when it has one.
    var headerPath: [UInt8] {
        let name = Self.truncated(field(0, 100))
        let prefix = isUstar ? Self.truncated(field(345, 155)) : []
        return prefix.isEmpty ? Array(name) : Array(prefix) + [UInt8(ascii: "/")] + Array(name)
    }

    var headerLinkName: [UInt8]? {
        bytes[157] == 0 ? nil : Array(Self.truncated(field(157, 100)))
    }

    static func truncated(_ field: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        field.prefix { $0 != 0 }
    }

    /// Octal text up to the first NUL, surrounding whitespace ignored.
    static func octal(_ field: ArraySlice<UInt8>) -> UInt64? {
        guard let text = String(validating: truncated(field), as: UTF8.self) else { return nil }
        var digits = Substring(text.trimmingWhitespace())
        if digits.hasPrefix("+") { digits = digits.dropFirst() }
        guard !digits.isEmpty, digits.allSatisfy({ ("0"..."7").contains($0) }) else { return nil }
        return UInt64(digits, radix: 8)
    }

    /// A numeric field: octal, or GNU base-256 when the top bit of its first byte is set.
    static func number(_ field: ArraySlice<UInt8>) -> UInt64? {
        guard let first = field.first, first & 0x80 != 0 else { return octal(field) }
        var value: UInt64 = 0
        let bytes = Array(field)
        let start: Int
        if bytes.count == 8 {
            value = UInt64(first ^ 0x80)
            start = 1
        } else {
            start = bytes.count - 8
        }
        for byte in bytes[start...] { value = value << 8 | UInt64(byte) }
        return value
    }
}

extension String {
    /// Without leading and trailing whitespace (Unicode's, as Rust's `str::trim`).
    func trimmingWhitespace() -> Substring {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
              let last = scalars.lastIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        return Substring(scalars[first...last])
    }
}
