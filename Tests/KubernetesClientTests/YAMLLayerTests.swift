import Foundation
import KubernetesClient
import Testing

/// The YAML layer over libyaml reads and writes what the YAML library before it did (Yams): YAML 1.1 scalar
/// types as kubectl applies them, and the same quoting and number forms in `cwo render`'s output.
@Suite struct YAMLLayerTests {
    @Test(arguments: [
        // YAML 1.1 booleans, in every spelling.
        ("yes", JSONValue.bool(true)), ("No", .bool(false)), ("ON", .bool(true)), ("off", .bool(false)), ("True", .bool(true)),
        ("y", .string("y")), ("tRue", .string("tRue")),
        // Integers: separators, bases, sexagesimal; a leading 0 is octal.
        ("42", .number(42)), ("-7", .number(-7)), ("+5", .number(5)), ("1_000", .number(1000)), ("0x1F", .number(31)),
        ("0b101", .number(5)), ("0o17", .number(15)), ("017", .number(15)), ("1:30", .number(90)), ("0", .number(0)),
        ("99999999999999999999", .string("99999999999999999999")), ("08", .number(8)),
        // Floats, but not the non-finite ones (JSON has none).
        ("1.5", .number(1.5)), ("1e3", .number(1000)), (".5", .number(0.5)), ("1_0.5", .number(10.5)), ("1:30.5", .number(90.5)),
        ("1.", .number(1)), (".inf", .string(".inf")), ("-.Inf", .string("-.Inf")), (".nan", .string(".nan")),
        // Nulls.
        ("~", .null), ("null", .null), ("Null", .null), ("", .null), ("NULL", .null), ("nULL", .string("nULL")),
        // What stays text: dates, merge and value keys, versions, a quoted or tagged scalar.
        ("2026-01-01", .string("2026-01-01")), ("1.2.3", .string("1.2.3")), ("'true'", .string("true")), ("\"3\"", .string("3")),
        ("!!str 3", .string("3")), ("!!int 3", .number(3)), ("!!int '3'", .string("3")), ("!!bool 'yes'", .bool(true)), ("! 3", .string("3")),
        ("=", .string("=")), ("0o", .string("0o")), ("+.5", .string("+.5")), ("1e", .string("1e")), ("1:60", .string("1:60")),
    ] as [(String, JSONValue)])
    func scalarsResolveAsYAML11(text: String, expected: JSONValue) throws {
        #expect(try YAMLDocuments.parse("value: \(text)") == [["value": expected]])
    }

    @Test func streamsAliasesAndBlockScalars() throws {
        let documents = try YAMLDocuments.parse("""
            # a comment
            base: &base {a: 1, b: [x, y]}
            copy: *base
            text: |
              line one
              line two
            folded: >-
              one
              two
            ...
            ---
            - 1
            ---
            """)
        #expect(documents.count == 2)
        #expect(documents[0]["copy"] == ["a": 1, "b": ["x", "y"]])
        #expect(documents[0]["text"] == "line one\nline two\n")
        #expect(documents[0]["folded"] == "one two")
        #expect(documents[1] == [1])
    }

    @Test(arguments: [
        ("a: [1, 2", "line 2, column 1"),
        ("a: 1\n  b: 2", "line 2, column 4"),
        ("a: 1\na: 2", "line 2, column 1"),
        ("? [x]\n: 1", "mapping keys must be scalars"),
        ("key: *nowhere", "names no anchor"),
        ("a: \"unterminated", "line 1, column 4"),
    ])
    func errorsSayWhere(text: String, fragment: String) {
        #expect { try YAMLDocuments.parse(text) } throws: { "\($0)".contains(fragment) }
    }

    @Test func aliasesCannotExpandWithoutBound() {
        var text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for level in 1...7 { text += "a\(level): &a\(level) [" + Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ") + "]\n" }
        #expect { try YAMLDocuments.parse(text) } throws: { "\($0)".contains("expands to more than") }
    }

    @Test func deepNestingIsAnErrorNotACrash() {
        let text = String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000)
        #expect { try YAMLDocuments.parse(text) } throws: { "\($0)".contains("nested more than") }
    }

    /// What `cwo render` writes for strings that YAML would read as something else, and for numbers.
    @Test func dumpQuotesAndNumbersAsBefore() throws {
        let value: JSONValue = [
            "strings": ["yes", "1:30", "2026-01-01", "2001-12-14 21:59:43.10 -5", "", "<<", "=", "~", "0x1F", "1e3", ".inf", "plain", "a: b", "- x", "true\n", "#x", "multi\nline"],
            "numbers": .array([0, -3, 42, 1.5, 0.1, -2.5e-7, 1e15, 123456789.123, 1e300, 0.3333333333333333, 99999999999999.99].map(JSONValue.number)),
            "keys": ["true": 1, "1": 2, "": 3],
        ]
        let text = try YAMLDocuments.dump([value])
        #expect(text == """
            ---
            keys:
              '': 3
              1: 2
              true: 1
            numbers:
            - 0
            - -3
            - 42
            - 1.5e+0
            - 1e-1
            - -2.5e-7
            - 1e+15
            - 1.23456789123e+8
            - 1e+300
            - 3.33333333333333e-1
            - 1e+14
            strings:
            - 'yes'
            - '1:30'
            - '2026-01-01'
            - '2001-12-14 21:59:43.10 -5'
            - ''
            - '<<'
            - '='
            - '~'
            - '0x1F'
            - '1e3'
            - '.inf'
            - plain
            - 'a: b'
            - '- x'
            - 'true

              '
            - '#x'
            - 'multi

              line'

            """)
        // Keys are read as their text, so even the plain `true:` and `1:` come back as they were; numbers
        // come back to 15 significant digits.
        let again = try #require(try YAMLDocuments.parse(text).first)
        #expect(again["strings"] == value["strings"] && again["keys"] == value["keys"])
    }

    @Test func kubeconfigStringsTakeAnyScalar() throws {
        let config = try Kubeconfig(yaml: """
            clusters:
            - name: 1
              cluster: {server: "https://a.test", insecure-skip-tls-verify: yes}
            users:
            - name: true
              user: {exec: {command: get-token, args: [--port, 8080], env: [{name: N, value: 1.0}]}}
            contexts:
            - name: c
              context: {cluster: 1, user: true, namespace: 2024}
            current-context: c
            """, baseDirectory: "/etc")
        #expect(config.clusters.first?.name == "1")
        #expect(config.clusters.first?.cluster.insecureSkipTLSVerify == true)
        #expect(config.users.first?.user.exec?.args == ["--port", "8080"])
        #expect(config.users.first?.user.exec?.env?.first?.value == "1.0")
        #expect(try config.configuration().namespace == "2024")
        #expect(throws: (any Error).self) { try Kubeconfig(yaml: "clusters:\n- name: a\n  cluster: {server: x, insecure-skip-tls-verify: 'true'}", baseDirectory: "") }
    }
}
