import Foundation
@testable import KubernetesClient
import Testing

@Suite("UIDs and digests held compactly read back as the text stored")
struct CompactIdentifiersTests {
    @Test(arguments: [
        "c0e0c7e6-6161-4f23-9e3b-a66a03f0cfaf", "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff",
        // Not the API server's form: kept as text, the same text comes back.
        "C0E0C7E6-6161-4F23-9E3B-A66A03F0CFAF", "c0e0c7e6a6161-4f23-9e3b-a66a03f0cfaf", "c0e0c7e6-6161-4f23-9e3b-a66a03f0cfa", "uid-1", "",
        "c0e0c7e6-6161-4f23-9e3b-a66a03f0cfag", "c0e0c7e6-6161-4f23-9e3b-a66a03f0cfaé",
    ])
    func aUIDReadsBackAsWritten(_ text: String) {
        #expect(CompactUID(text).text == text)
        // Only the API server's form (36 characters, lowercase hex, dashes at 8, 13, 18, 23) is packed.
        let canonical = text.utf8.count == 36 && text.utf8.enumerated().allSatisfy { offset, byte in
            [8, 13, 18, 23].contains(offset) ? byte == UInt8(ascii: "-") : (byte >= 48 && byte <= 57) || (byte >= 97 && byte <= 102)
        }
        #expect(CompactUID(text).isPacked == canonical)
    }

    @Test func uidsAreEqualExactlyWhenTheirTextIs() {
        let uid = "c0e0c7e6-6161-4f23-9e3b-a66a03f0cfaf"
        #expect(CompactUID(uid) == CompactUID(String(uid)))
        #expect(CompactUID(uid) != CompactUID(uid.uppercased()))
        #expect(CompactUID(uid) != CompactUID("c0e0c7e6-6161-4f23-9e3b-a66a03f0cfae"))
        #expect(Set([CompactUID(uid), CompactUID(uid), CompactUID("x")]).count == 2)
    }

    @Test(arguments: [
        "3c6c15fc40ddb9bbefc7b381c3f7e1a4e0b8d324019e5a36aa8bf53f49152f01", String(repeating: "0", count: 64), String(repeating: "f", count: 64),
        "3C6C15FC40DDB9BBEFC7B381C3F7E1A4E0B8D324019E5A36AA8BF53F49152F01", "3c6c15fc", "sha256:3c6c15fc40ddb9bbefc7b381c3f7e1a4e0b8d324019e5a36aa8bf53f49152f01", "",
    ])
    func aDigestReadsBackAsWritten(_ text: String) {
        #expect(CompactDigest(text).text == text)
        #expect(CompactDigest(text).isPacked == (text.utf8.count == 64 && text.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }))
        #expect(CompactDigest(text) == CompactDigest(text))
    }

    @Test func objectMetadataKeepsItsUIDsThroughJSON() throws {
        let json = #"""
            {"name":"d","namespace":"ns","uid":"74f04803-21b1-4b02-8255-40a1968a6c45","resourceVersion":"9",
             "ownerReferences":[{"apiVersion":"cwo.dev/v1alpha1","kind":"ConfidentialWorkload","name":"w","uid":"c0e0c7e6-6161-4f23-9e3b-a66a03f0cfaf","controller":true}]}
            """#
        var metadata = try JSONCoding.decode(ObjectMeta.self, from: Data(json.utf8))
        #expect(metadata.uid == "74f04803-21b1-4b02-8255-40a1968a6c45")
        #expect(metadata.ownerReferences?.first?.uid == "c0e0c7e6-6161-4f23-9e3b-a66a03f0cfaf")
        #expect(metadata.ownerReferences?.first?.controller == true && metadata.ownerReferences?.first?.blockOwnerDeletion == nil)
        // Encoded again: the same members and values as read.
        let encoded = try JSONParser.parse(JSONCoding.encoder.encode(metadata))
        #expect(encoded == (try JSONParser.parse(json)))
        metadata.uid = nil
        #expect(metadata.uid == nil)
        #expect(try JSONParser.parse(JSONCoding.encoder.encode(metadata))["uid"] == nil)
        metadata.uid = "not-a-uuid"
        #expect(metadata.uid == "not-a-uuid")
    }
}
