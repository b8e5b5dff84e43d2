#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// What cwo used from full Foundation that FoundationEssentials lacks, rebuilt small so no target of
// `cwo run` links Foundation's ICU-backed half.

/// JSON as the `Any` trees `JSONSerialization` gave: `[String: Any]`, `[Any]`, `String`, `Double`, `Bool`,
/// and `AnyJSON.null`. Top-level fragments are allowed.
public enum AnyJSON {
    public struct Null: Sendable, Equatable {}
    public static let null = Null()

    public static func parse(_ bytes: some Sequence<UInt8>) throws -> Any {
        try JSONDecoder().decode(Value.self, from: Data(bytes)).value
    }

    private struct Value: Decodable {
        let value: Any

        init(from decoder: any Decoder) throws {
            if let object = try? decoder.container(keyedBy: Key.self) {
                var fields: [String: Any] = [:]
                for key in object.allKeys { fields[key.stringValue] = try object.decode(Value.self, forKey: key).value }
                value = fields
            } else if var array = try? decoder.unkeyedContainer() {
                var items: [Any] = []
                while !array.isAtEnd { items.append(try array.decode(Value.self).value) }
                value = items
            } else {
                let single = try decoder.singleValueContainer()
                if single.decodeNil() {
                    value = AnyJSON.null
                } else if let flag = try? single.decode(Bool.self) {
                    value = flag
                } else if let text = try? single.decode(String.self) {
                    value = text
                } else {
                    value = try single.decode(Double.self)
                }
            }
        }
    }

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}

extension StringProtocol {
    /// The text without leading and trailing white space and line breaks (Unicode's White_Space, the set
    /// `CharacterSet.whitespacesAndNewlines` holds).
    public func trimmingWhitespace() -> String {
        trimming { $0.properties.isWhitespace }
    }

    /// Whether `text`'s UTF-8 bytes occur in this text's (never when `text` is empty): `contains(_:)` for
    /// names, digests and other ASCII, without the standard library's Character-by-Character search
    /// (2 % of cwo's CPU while converging, for the condition messages of every cached workload). Not
    /// `utf8.firstRange(of:)`: on a 100-byte condition message it took 12 µs, `contains` 3.3 µs, this 50 ns.
    public func containsBytes(_ text: some StringProtocol) -> Bool {
        if let found = utf8.withContiguousStorageIfAvailable({ bytes in
            text.utf8.withContiguousStorageIfAvailable { Self.occurs(UnsafeRawBufferPointer($0), in: UnsafeRawBufferPointer(bytes)) }
        }), let found { return found }
        // Text not stored as contiguous UTF-8 (bridged): copied first.
        return Array(utf8).withUnsafeBytes { bytes in Array(text.utf8).withUnsafeBytes { Self.occurs($0, in: bytes) } }
    }

    private static func occurs(_ needle: UnsafeRawBufferPointer, in haystack: UnsafeRawBufferPointer) -> Bool {
        guard let first = needle.first, needle.count <= haystack.count else { return false }
        var start = 0
        let last = haystack.count - needle.count
        while start <= last {
            guard let hit = haystack[start...last].firstIndex(of: first) else { return false }
            if memcmp(haystack.baseAddress! + hit, needle.baseAddress!, needle.count) == 0 { return true }
            start = hit + 1
        }
        return false
    }

    /// The text without leading and trailing scalars for which `test` holds.
    public func trimming(while test: (Unicode.Scalar) -> Bool) -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !test($0) }), let last = scalars.lastIndex(where: { !test($0) }) else { return "" }
        var text = ""
        text.unicodeScalars.append(contentsOf: scalars[first...last])
        return text
    }

    /// Every UTF-8 byte outside `allowed` (ASCII) as `%XX`, upper-case hex, as `addingPercentEncoding` wrote it.
    public func percentEncoded(allowing allowed: (UInt8) -> Bool) -> String {
        var out = ""
        out.reserveCapacity(utf8.count)
        for byte in utf8 {
            if byte < 0x80, allowed(byte) {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += "%" + String(byte >> 4, radix: 16, uppercase: true) + String(byte & 0x0F, radix: 16, uppercase: true)
            }
        }
        return out
    }
}

/// ASCII sets for `percentEncoded(allowing:)`.
public enum URLCharacters {
    /// RFC 3986 unreserved: letters, digits, `-._~`.
    public static func unreserved(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) || byte == 0x2D || byte == 0x2E || byte == 0x5F || byte == 0x7E
    }

    /// What `CharacterSet.urlPathAllowed` holds, less `/`: one path segment (`;` is not in that set).
    public static func pathSegment(_ byte: UInt8) -> Bool {
        unreserved(byte) || "!$&'()*+,=:@".utf8.contains(byte)
    }
}

extension BinaryInteger {
    /// Lower-case hex padded with zeros to `width` digits (`String(format: "%04x")`).
    public func hex(width: Int) -> String { padded(String(self, radix: 16), width) }

    /// Decimal padded with zeros to `width` digits (`String(format: "%06d")`, for a value that is not negative).
    public func decimal(width: Int) -> String { padded(String(self), width) }

    private func padded(_ digits: String, _ width: Int) -> String {
        digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }
}

public enum FileError {
    /// Why reading a file failed, in the system's words ("No such file or directory").
    public static func reason(_ error: any Error) -> String {
        if let error = error as? CocoaError, let posix = error.userInfo["NSUnderlyingError"] as? POSIXError {
            return String(cString: strerror(posix.code.rawValue))
        }
        return "\(error)"
    }
}

/// Runs a program and collects its standard output (what `Process` with a `Pipe` did): standard input is
/// /dev/null, standard error is discarded or shared with this process.
public enum ChildProcess {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    public struct Result: Sendable {
        /// The exit status, or the number of the signal that ended it.
        public var status: Int32
        public var output: [UInt8]
    }

    /// Runs `arguments[0]`, found on the PATH as `/usr/bin/env` finds it, with `arguments`.
    public static func run(_ arguments: [String], environment: [String: String], discardStandardError: Bool) throws(Failure) -> Result {
        var descriptors: [Int32] = [-1, -1]
        guard pipe(&descriptors) == 0 else {
            throw Failure(description: "cannot create a pipe: \(String(cString: strerror(errno)))")
        }
        let (readEnd, writeEnd) = (descriptors[0], descriptors[1])
        // Neither end may leak into programs other threads start meanwhile; dup2 clears the flag on stdout.
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 1)
        if discardStandardError { posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0) }

        let argv = (["/usr/bin/env"] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, "/usr/bin/env", &actions, nil, argv, envp)
        close(writeEnd)
        guard spawned == 0 else {
            close(readEnd)
            throw Failure(description: String(cString: strerror(spawned)))
        }

        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
            if count > 0 {
                output.append(contentsOf: buffer[0..<count])
            } else if count == 0 || errno != EINTR {
                break
            }
        }
        close(readEnd)

        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else { throw Failure(description: "cannot wait for the program: \(String(cString: strerror(errno)))") }
        }
        // WIFEXITED / WEXITSTATUS / WTERMSIG, which are macros in C.
        let signal = status & 0x7F
        return Result(status: signal == 0 ? (status >> 8) & 0xFF : signal, output: output)
    }
}

/// Standard input, output and error, read and written whole (what `FileHandle.standardError.write` and
/// `FileHandle.standardInput.readDataToEndOfFile()` did).
public struct StandardStream: Sendable {
    public let descriptor: Int32

    public static let standardInput = StandardStream(descriptor: 0)
    public static let standardOutput = StandardStream(descriptor: 1)
    public static let standardError = StandardStream(descriptor: 2)

    /// Writes every byte, retrying short and interrupted writes; gives up silently if the stream is closed.
    public func write(_ bytes: some Sequence<UInt8>) {
        let bytes = Array(bytes)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { Glibc_write(descriptor, $0.baseAddress.map { $0 + offset }, bytes.count - offset) }
            if written > 0 {
                offset += written
            } else if written < 0 && errno == EINTR {
                continue
            } else {
                return
            }
        }
    }

    public func readDataToEndOfFile() -> Data {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count > 0 {
                data.append(contentsOf: buffer[0..<count])
            } else if count == 0 || errno != EINTR {
                return data
            }
        }
    }
}

/// The C `write`, by a name the method above does not shadow.
private func Glibc_write(_ descriptor: Int32, _ bytes: UnsafeRawPointer?, _ count: Int) -> Int {
    write(descriptor, bytes, count)
}
