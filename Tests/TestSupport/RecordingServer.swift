import Foundation
import NIOCore
import NIOHTTP1

/// One request a test server received.
public struct RecordedRequest: Sendable, CustomStringConvertible {
    public var method: String
    public var path: String
    public var query: [String: String]
    public var headers: [String: String]
    public var body: String
    /// When it arrived.
    public var at = Date()

    /// The form fields of a token request.
    public var form: [String: String] {
        Dictionary(body.split(separator: "&").map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? String($0) }
            return (parts[0], parts.count > 1 ? parts[1] : "")
        }, uniquingKeysWith: { $1 })
    }

    /// The parsed JSON body.
    public var json: [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]
    }

    public var description: String { "\(method) \(path)" }
}

/// What a test server answers.
struct CannedAnswer: Sendable {
    var status: Int
    var body: String
    var headers: [(String, String)] = []
}

/// Reads each HTTP request whole, asks `answer` for the response (nil: the server is gone, nothing is
/// sent) and writes it, keeping the connection alive when the client asked.
final class RecordingHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let answer: @Sendable (RecordedRequest) async -> CannedAnswer?
    var head: HTTPRequestHead?
    var body = ByteBuffer()

    init(answer: @escaping @Sendable (RecordedRequest) async -> CannedAnswer?) { self.answer = answer }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body.clear()
        case .body(var chunk):
            body.writeBuffer(&chunk)
        case .end:
            guard let head else { return }
            let components = URLComponents(string: head.uri)
            let request = RecordedRequest(
                method: head.method.rawValue, path: components?.path ?? head.uri,
                query: Dictionary((components?.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { $1 }),
                headers: Dictionary(head.headers.map { ($0.name.lowercased(), $0.value) }, uniquingKeysWith: { $1 }),
                body: String(buffer: body))
            let keepAlive = head.isKeepAlive
            let channel = context.channel
            let answer = self.answer
            Task {
                guard let answer = await answer(request) else { return }
                var headers = HTTPHeaders([("Content-Type", "application/json; charset=utf-8"), ("Content-Length", "\(answer.body.utf8.count)")])
                for (name, value) in answer.headers { headers.add(name: name, value: value) }
                if !keepAlive { headers.add(name: "Connection", value: "close") }
                let responseHead = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: answer.status), headers: headers)
                channel.write(HTTPServerResponsePart.head(responseHead), promise: nil)
                channel.write(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: answer.body))), promise: nil)
                channel.writeAndFlush(HTTPServerResponsePart.end(nil)).whenComplete { _ in
                    if !keepAlive { channel.close(promise: nil) }
                }
            }
        }
    }
}
