import Yams

/// YAML documents to and from `JSONValue`, with YAML 1.1 scalar resolution as kubectl applies it
/// (a quoted "true" stays a string; a plain `true` is a boolean).
public enum YAMLDocuments {
    public struct Error: Swift.Error, CustomStringConvertible, Sendable {
        public var message: String
        public var description: String { message }
    }

    /// Every non-empty document of a `---` separated stream.
    public static func parse(_ text: String) throws -> [JSONValue] {
        do {
            var documents: [JSONValue] = []
            // Parser.nextRoot throws on a syntax error; compose_all's lazy sequence would just stop.
            let parser = try Parser(yaml: text)
            while let node = try parser.nextRoot() {
                let value = try convert(node, path: "")
                if !value.isNull { documents.append(value) }
            }
            return documents
        } catch let error as Error {
            throw error
        } catch {
            throw Error(message: "not valid YAML: \(error)")
        }
    }

    private static func convert(_ node: Node, path: String) throws -> JSONValue {
        switch node {
        case .scalar(let scalar):
            switch Resolver.default.resolveTag(of: node) {
            case .null: return .null
            case .bool: return Bool.construct(from: scalar).map(JSONValue.bool) ?? .string(scalar.string)
            case .int:
                if let value = Int.construct(from: scalar) { return .number(Double(value)) }
                return .string(scalar.string)
            case .float:
                if let value = Double.construct(from: scalar), value.isFinite { return .number(value) }
                return .string(scalar.string)
            default: return .string(scalar.string)
            }
        case .mapping(let mapping):
            var object: [String: JSONValue] = [:]
            for (key, value) in mapping {
                guard case .scalar(let keyScalar) = key else {
                    throw Error(message: "\(path.isEmpty ? "document" : path): mapping keys must be scalars")
                }
                let name = keyScalar.string
                if name == "<<" { continue }
                object[name] = try convert(value, path: path.isEmpty ? name : "\(path).\(name)")
            }
            return .object(object)
        case .sequence(let sequence):
            return .array(try sequence.enumerated().map { try convert($1, path: "\(path)[\($0)]") })
        case .alias:
            throw Error(message: "\(path): YAML aliases are not supported")
        }
    }

    /// A `---` separated stream, keys sorted, strings quoted where YAML would read them as something else.
    public static func dump(_ documents: [JSONValue]) throws -> String {
        try documents.map { "---\n" + (try Yams.serialize(node: node($0), width: -1, allowUnicode: true, sortKeys: true)) }.joined()
    }

    static func node(_ value: JSONValue) throws -> Node {
        switch value {
        case .null: return Node("null", Tag(.null))
        case .bool(let flag): return Node(flag ? "true" : "false", Tag(.bool))
        case .number(let number):
            if number.rounded() == number, abs(number) < 1e15 { return .scalar(Int(number).represented()) }
            return .scalar(number.represented())
        case .string(let text): return .scalar(text.represented())
        case .array(let items): return Node(try items.map(node))
        case .object(let fields):
            return Node(try fields.sorted { $0.key < $1.key }.map { (Node($0.key), try node($0.value)) })
        }
    }
}
