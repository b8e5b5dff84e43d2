import AsyncHTTPClient
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOCore

extension KubeClient {
    /// Opens a watch. The returned sequence reads the response as it arrives; it holds no more than one
    /// event in memory, so a slow consumer slows the TCP connection instead of growing a buffer.
    ///
    /// Throws `KubeError` with reason `.gone` when the resourceVersion is too old (HTTP 410 or an
    /// `ERROR` event with reason `Expired`/`Gone`): the caller must relist.
    public func watch<T: Decodable & Sendable>(
        _ resource: Resource, namespace: String? = nil, options: WatchOptions = WatchOptions(), as type: T.Type = T.self
    ) async throws -> WatchStream<T> {
        let path = resource.path(namespace: namespace)
        // A kind read from protobuf is watched as protobuf when the server offers it.
        let accept = T.self is any ProtobufDecodable.Type ? KubernetesProtobuf.watchAccept : "application/json"
        let response = try await execute(.GET, path, query: options.queryItems, body: nil, contentType: "", timeout: configuration.requestTimeout, accept: accept)
        guard response.status.code == 200 else {
            let body = (try? await response.body.collect(upTo: 1 << 20)) ?? ByteBuffer()
            throw Self.error(response: response, body: body, method: "GET", path: path + "?watch=true")
        }
        let protobuf = response.headers.first(name: "Content-Type")?.hasPrefix(KubernetesProtobuf.mediaType) == true
        return WatchStream(body: response.body, path: path, dropManagedFields: options.dropManagedFields, protobuf: protobuf)
    }
}

/// The events of one watch request, in order. Ends when the server closes the stream.
public struct WatchStream<Object: Decodable & Sendable>: AsyncSequence {
    public typealias Element = WatchEvent<Object>
    let body: HTTPClientResponse.Body
    let path: String
    var dropManagedFields = false
    /// Length-prefixed protobuf frames instead of JSON lines.
    var protobuf = false

    public func makeAsyncIterator() -> Iterator {
        Iterator(body: body.makeAsyncIterator(), path: path, dropManagedFields: dropManagedFields, protobuf: protobuf)
    }

    public struct Iterator: AsyncIteratorProtocol {
        var body: HTTPClientResponse.Body.AsyncIterator
        var splitter = LineSplitter()
        var frames: LengthPrefixedFrames?
        let path: String
        let dropManagedFields: Bool
        var finished = false

        init(body: HTTPClientResponse.Body.AsyncIterator, path: String, dropManagedFields: Bool, protobuf: Bool) {
            self.body = body
            self.path = path
            self.dropManagedFields = dropManagedFields
            if protobuf { frames = LengthPrefixedFrames() }
        }

        public mutating func next() async throws -> WatchEvent<Object>? {
            while !finished {
                if frames != nil, let frame = try frames?.next() {
                    return try decodeProtobuf(frame)
                }
                if frames == nil, let line = try splitter.nextLine() {
                    return try decode(line)
                }
                let chunk: ByteBuffer?
                do {
                    chunk = try await body.next()
                } catch {
                    if Task.isCancelled { throw CancellationError() }
                    throw KubeClientError.transport(method: "GET", path: path + "?watch=true", underlying: "\(error)")
                }
                guard let chunk else {
                    finished = true
                    // A protobuf frame cut short is a broken stream: the caller resumes from the last version.
                    if frames == nil, let last = splitter.finish() { return try decode(last) }
                    return nil
                }
                if frames != nil { frames?.append(chunk) } else { splitter.append(chunk) }
            }
            return nil
        }

        private func decodeProtobuf(_ frame: ByteBuffer) throws -> WatchEvent<Object> {
            let payload: WatchFrame<Object>.Payload
            do {
                payload = try frame.withUnsafeReadableBytes { try KubernetesProtobuf.watchFrame($0, as: Object.self) }
            } catch {
                throw KubeClientError.decoding(method: "GET", path: path + "?watch=true", underlying: "\(error)")
            }
            return try Self.event(payload, path: path)
        }

        private func decode(_ line: ByteBuffer) throws -> WatchEvent<Object> {
            let frame: WatchFrame<Object>
            do {
                frame = try line.withUnsafeReadableBytes { try JSONCoding.decode(WatchFrame<Object>.self, from: $0, dropManagedFields: dropManagedFields) }
            } catch {
                throw KubeClientError.decoding(method: "GET", path: path + "?watch=true", underlying: "\(error)")
            }
            return try Self.event(frame.payload, path: path)
        }

        private static func event(_ payload: WatchFrame<Object>.Payload, path: String) throws -> WatchEvent<Object> {
            switch payload {
            case .event(let event):
                return event
            case .error(let status):
                throw KubeError.classify(code: status.code ?? 500, status: status, method: "GET", path: path + "?watch=true", retryAfter: nil)
            }
        }
    }
}

/// Decodes watch frames from raw bytes; the same decoder the stream uses, exposed for tests and fuzzing.
public enum WatchDecoding {
    public static func decode<T: Decodable & Sendable>(_ line: some Sequence<UInt8>, as type: T.Type) throws -> WatchEvent<T> {
        let frame = try JSONCoding.decode(WatchFrame<T>.self, from: Array(line))
        switch frame.payload {
        case .event(let event): return event
        case .error(let status):
            throw KubeError.classify(code: status.code ?? 500, status: status, method: "GET", path: "watch", retryAfter: nil)
        }
    }
}
