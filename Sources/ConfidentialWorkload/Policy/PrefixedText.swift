import ControllerRuntime
import Crypto
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// SHA-256 and base64 of texts that begin with one long constant prefix: every generated policy begins
/// with cwo's rules (~40 KB), and its annotation with their base64. The hash state after the prefix, the
/// prefix's base64 and the hash state after that are computed once; each text then costs a comparison of
/// the prefix (memcmp) and the work of what follows it. The results are those of hashing or encoding the
/// whole text, for any text: one that does not begin with the prefix is hashed or encoded whole.
struct PrefixedText: Sendable {
    let prefix: [UInt8]
    private let prefixState: SHA256
    /// The base64 of the prefix's first `encodedCount` bytes (whole 3-byte groups), and the hash state after it.
    private let encodedCount: Int
    private let encodedPrefix: [UInt8]
    private let encodedPrefixState: SHA256

    init(_ prefix: String) {
        self.prefix = Array(prefix.utf8)
        var state = SHA256()
        state.update(data: self.prefix)
        prefixState = state
        encodedCount = self.prefix.count - self.prefix.count % 3
        encodedPrefix = Array(Data(self.prefix[..<encodedCount]).base64EncodedString().utf8)
        var encodedState = SHA256()
        encodedState.update(data: encodedPrefix)
        encodedPrefixState = encodedState
    }

    /// Lowercase hex SHA-256 of `text`'s UTF-8.
    func sha256Hex(_ text: String) -> String {
        var text = text
        return text.withUTF8 { Self.sha256Hex(UnsafeRawBufferPointer($0), known: prefix, state: prefixState) }
    }

    /// Lowercase hex SHA-256 of the base64 of a text (an annotation's value, as the API server holds it).
    func sha256HexOfEncoded(_ encoded: String) -> String {
        var encoded = encoded
        return encoded.withUTF8 { Self.sha256Hex(UnsafeRawBufferPointer($0), known: encodedPrefix, state: encodedPrefixState) }
    }

    /// Standard base64, padded, of `text`'s UTF-8.
    func base64(_ text: String) -> String {
        var text = text
        return text.withUTF8 { bytes in
            let raw = UnsafeRawBufferPointer(bytes)
            guard Self.begins(raw, with: prefix) else { return Data(raw).base64EncodedString() }
            // Whole 3-byte groups encode on their own: the prefix's are done, the rest follows them.
            let rest = Data(raw[encodedCount...]).base64EncodedString()
            var encoded = String(decoding: encodedPrefix, as: UTF8.self)
            encoded.reserveCapacity(encodedPrefix.count + rest.utf8.count)
            encoded += rest
            return encoded
        }
    }

    private static func sha256Hex(_ bytes: UnsafeRawBufferPointer, known: [UInt8], state: SHA256) -> String {
        var hasher: SHA256
        if begins(bytes, with: known) {
            hasher = state
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: bytes[known.count...]))
        } else {
            hasher = SHA256()
            hasher.update(bufferPointer: bytes)
        }
        return hasher.finalize().hexString
    }

    private static func begins(_ bytes: UnsafeRawBufferPointer, with known: [UInt8]) -> Bool {
        guard !known.isEmpty, bytes.count >= known.count, let base = bytes.baseAddress else { return false }
        return known.withUnsafeBytes { memcmp(base, $0.baseAddress!, known.count) == 0 }
    }
}
