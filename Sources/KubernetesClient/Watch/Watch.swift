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
        let response = try await execute(.GET, path, query: options.queryItems, body: nil, contentType: "", timeout: configuration.requestTimeout)
        guard response.status.code == 200 else {
            let body = (try? await response.body.collect(upTo: 1 << 20)) ?? ByteBuffer()
            throw Self.error(response: response, body: body, method: "GET", path: path + "?watch=true")
        }
        return WatchStream(body: response.body, path: path, dropManagedFields: options.dropManagedFields)
    }
}

/// The events of one watch request, in order. Ends when the server closes the stream.
public struct WatchStream<Object: Decodable & Sendable>: AsyncSequence {
    public typealias Element = WatchEvent<Object>
    let body: HTTPClientResponse.Body
    let path: String
    var dropManagedFields = false

    public func makeAsyncIterator() -> Iterator {
        Iterator(body: body.makeAsyncIterator(), path: path, dropManagedFields: dropManagedFields)
    }

    public struct Iterator: AsyncIteratorProtocol {
        var body: HTTPClientResponse.Body.AsyncIterator
        var splitter = LineSplitter()
        let path: String
        let dropManagedFields: Bool
        var finished = false

        init(body: HTTPClientResponse.Body.AsyncIterator, path: String, dropManagedFields: Bool) {
            self.body = body
            self.path = path
            self.dropManagedFields = dropManagedFields
        }

        public mutating func next() async throws -> WatchEvent<Object>? {
            while !finished {
                if let line = try splitter.nextLine() {
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
                    if let last = splitter.finish() { return try decode(last) }
                    return nil
                }
                splitter.append(chunk)
            }
            return nil
        }

        private func decode(_ line: ByteBuffer) throws -> WatchEvent<Object> {
            let frame: WatchFrame<Object>
            do {
                frame = try line.withUnsafeReadableBytes { try JSONCoding.decode(WatchFrame<Object>.self, from: $0, dropManagedFields: dropManagedFields) }
            } catch {
                throw KubeClientError.decoding(method: "GET", path: path + "?watch=true", underlying: "\(error)")
            }
            switch frame.payload {
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
