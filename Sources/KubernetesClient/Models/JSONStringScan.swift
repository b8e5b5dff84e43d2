/// Finds, eight bytes at a time, where a JSON string's plain run ends: the first byte that is a quote, a
/// backslash or a control character (< 0x20). Policies travel as ~50 KB strings of base64 with none of
/// these; a byte-at-a-time loop over them was a tenth of a desired-state build.
public enum JSONStringScan {
    private static let ones: UInt64 = 0x0101_0101_0101_0101
    private static let highs: UInt64 = 0x8080_8080_8080_8080

    /// The bytes of `word` equal to zero, as their high bits (exact for the lowest such byte).
    @inline(__always)
    private static func zeroBytes(_ word: UInt64) -> UInt64 { (word &- ones) & ~word & highs }

    /// The index in `bytes` of the first quote, backslash or control byte at or after `start`
    /// (`bytes.count` when there is none), and whether a byte >= 0x80 (not ASCII) came before it.
    @inline(__always)
    public static func plainRun(_ bytes: UnsafeRawBufferPointer, from start: Int) -> (end: Int, nonASCII: Bool) {
        var index = start
        var high: UInt64 = 0
        while index + 8 <= bytes.count {
            let word = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self))
            // Bytes below 0x20 (a borrow only ever runs from a byte that is itself below 0x20, so the lowest
            // flagged byte is exact); bytes equal to '"'; bytes equal to '\'.
            let stops = ((word &- ones &* 0x20) & ~word & highs) | zeroBytes(word ^ (ones &* 0x22)) | zeroBytes(word ^ (ones &* 0x5C))
            if stops != 0 {
                let offset = stops.trailingZeroBitCount / 8
                // Only the bytes before the stop count for `nonASCII`.
                let before = offset == 0 ? 0 : word & (UInt64.max >> (64 - 8 * offset))
                return (index + offset, (high | before) & highs != 0)
            }
            high |= word
            index += 8
        }
        while index < bytes.count {
            let byte = bytes[index]
            if byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { break }
            high |= UInt64(byte)
            index += 1
        }
        return (index, high & highs != 0)
    }

    /// `text` as the inside of a JSON string, handed to `write` piece by piece: the runs that need no
    /// escape as they are, then the escape of each byte that does (`\"`, `\\`, `\n`, `\r`, `\t`, and
    /// `\u00xx` for the other control characters).
    public static func escaped(_ text: String, _ write: (UnsafeRawBufferPointer) -> Void) {
        var text = text
        text.withUTF8 { utf8 in
            let bytes = UnsafeRawBufferPointer(utf8)
            var start = 0
            while true {
                let end = plainRun(bytes, from: start).end
                if end > start { write(UnsafeRawBufferPointer(rebasing: bytes[start..<end])) }
                guard end < bytes.count else { return }
                escape(bytes[end], write)
                start = end + 1
            }
        }
    }

    private static func escape(_ byte: UInt8, _ write: (UnsafeRawBufferPointer) -> Void) {
        let short: UInt8? =
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): byte
            case 0x0A: UInt8(ascii: "n")
            case 0x0D: UInt8(ascii: "r")
            case 0x09: UInt8(ascii: "t")
            default: nil
            }
        let digits: StaticString = "0123456789abcdef"
        // On the stack: the policy's regexes are full of backslashes.
        let sequence = (
            UInt8(ascii: "\\"), short ?? UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
            digits.utf8Start[Int(byte >> 4)], digits.utf8Start[Int(byte & 0x0F)]
        )
        withUnsafeBytes(of: sequence) { write(UnsafeRawBufferPointer(rebasing: $0[0..<(short == nil ? 6 : 2)])) }
    }
}
