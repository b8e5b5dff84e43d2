#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import KubernetesClient

/// Does the live object already carry every field of a server-side-apply body?
///
/// The server adds defaults (`dnsPolicy`, `terminationMessagePath`, ...), drops empty lists and zero
/// values, and normalizes quantities ("0.5" → "500m"). Comparing the apply body for *containment*
/// under those rules, instead of equality, is what lets a converged controller make zero writes
/// (the defaulted-field diff fight is operator pain point 3) while still reverting a hand edit of a
/// field it owns.
public enum AppliedState {
    public static func contains(_ live: JSONValue?, _ desired: JSONValue) -> Bool {
        difference(live, desired) == nil
    }

    /// The path of the first field of `desired` that `live` lacks or has another value for; nil when none.
    public static func difference(_ live: JSONValue?, _ desired: JSONValue) -> String? {
        difference(live, desired, path: "", quantities: false)
    }

    /// Keys under which strings are resource quantities, which the server normalizes.
    private static let quantityKeys: Set<String> = ["limits", "requests", "overhead", "sizeLimit", "capacity", "hard"]

    private static func difference(_ live: JSONValue?, _ desired: JSONValue, path: String, quantities: Bool) -> String? {
        let here = path.isEmpty ? "." : path
        switch desired {
        case .null:
            return live == nil || live == .null ? nil : here
        case .object(let fields):
            guard let live else { return fields.values.allSatisfy(isEmptyValue) ? nil : here }
            guard case .object(let liveFields) = live else { return fields.isEmpty && live == .null ? nil : here }
            for (key, value) in fields.sorted(by: { $0.key < $1.key }) {
                if let found = difference(liveFields[key], value, path: "\(path).\(key)", quantities: quantities || quantityKeys.contains(key)) {
                    return found
                }
            }
            return nil
        case .array(let items):
            guard let live else { return items.isEmpty ? nil : here }
            guard case .array(let liveItems) = live else { return items.isEmpty && live == .null ? nil : here }
            guard items.count == liveItems.count else { return "\(here) (length)" }
            // Lists of named things (containers, env, volumes, ports) are maps on the server: match by name.
            if items.allSatisfy({ $0["name"]?.stringValue != nil }), liveItems.allSatisfy({ $0["name"]?.stringValue != nil }) {
                let byName = Dictionary(liveItems.map { ($0["name"]?.stringValue ?? "", $0) }, uniquingKeysWith: { first, _ in first })
                for item in items {
                    let name = item["name"]?.stringValue ?? ""
                    if let found = difference(byName[name], item, path: "\(path)[\(name)]", quantities: quantities) { return found }
                }
                return nil
            }
            for (index, (item, liveItem)) in zip(items, liveItems).enumerated() {
                if let found = difference(liveItem, item, path: "\(path)[\(index)]", quantities: quantities) { return found }
            }
            return nil
        case .string(let text):
            guard let live else { return text.isEmpty ? nil : here }
            if case .string(let liveText) = live {
                return text == liveText || (quantities && Quantity.equal(text, liveText)) ? nil : here
            }
            // An integer written as a string where the server keeps a number (or the reverse, e.g. IntOrString).
            if case .number(let number) = live, let value = Double(text) { return value == number ? nil : here }
            return here
        case .number(let number):
            guard let live else { return number == 0 ? nil : here }
            if quantities, case .string(let text) = live { return Quantity.equal(text, JSONValue.number(number).compactText) ? nil : here }
            return live == desired ? nil : here
        case .bool(let flag):
            guard let live else { return flag ? here : nil }
            return live == desired ? nil : here
        }
    }

    /// What an `omitempty` field looks like when the server leaves it out.
    static func isEmptyValue(_ value: JSONValue) -> Bool {
        switch value {
        case .null: true
        case .bool(let flag): !flag
        case .number(let number): number == 0
        case .string(let text): text.isEmpty
        case .array(let items): items.isEmpty
        case .object(let fields): fields.values.allSatisfy(isEmptyValue)
        }
    }
}

extension JSONValue {
    var compactText: String {
        if case .number(let number) = self {
            return number.rounded() == number && abs(number) < 1e15 ? String(Int64(number)) : String(number)
        }
        return stringValue ?? ""
    }
}

/// Kubernetes resource quantities ("500m", "1.5Gi", "2e3"), compared by value.
public enum Quantity {
    private static let suffixes: [(String, Double)] = [
        ("Ki", 1024), ("Mi", 1_048_576), ("Gi", 1_073_741_824), ("Ti", 1_099_511_627_776), ("Pi", 1_125_899_906_842_624),
        ("Ei", 1_152_921_504_606_846_976), ("n", 1e-9), ("u", 1e-6), ("m", 1e-3), ("k", 1e3), ("M", 1e6), ("G", 1e9),
        ("T", 1e12), ("P", 1e15), ("E", 1e18),
    ]

    public static func parse(_ text: String) -> Double? {
        guard !text.isEmpty, text.first != " " else { return nil }
        for (suffix, factor) in suffixes where text.hasSuffix(suffix) {
            guard let number = Double(text.dropLast(suffix.count)), number.isFinite else { return nil }
            return number * factor
        }
        guard let number = Double(text), number.isFinite else { return nil }
        return number
    }

    public static func equal(_ lhs: String, _ rhs: String) -> Bool {
        guard let left = parse(lhs), let right = parse(rhs) else { return false }
        return abs(left - right) <= max(abs(left), abs(right)) * 1e-12
    }
}
