import ControllerRuntime
import KubernetesClient
import Testing

@Suite struct AppliedStateTests {
    let desired: JSONValue = [
        "metadata": ["name": "w", "labels": ["a": "1"]],
        "spec": [
            "replicas": 2,
            "template": ["spec": [
                "containers": [["name": "app", "image": "nginx", "env": [], "resources": ["limits": ["cpu": "0.5", "memory": "1Gi"]]]],
                "hostNetwork": false,
            ]],
        ],
    ]

    /// What the server returns: defaults added, empty and false fields dropped, quantities normalized.
    let live: JSONValue = [
        "metadata": ["name": "w", "labels": ["a": "1", "added-by-someone": "x"], "uid": "u"],
        "spec": [
            "replicas": 2, "revisionHistoryLimit": 10,
            "template": ["spec": [
                "containers": [[
                    "name": "app", "image": "nginx", "terminationMessagePath": "/dev/termination-log",
                    "resources": ["limits": ["cpu": "500m", "memory": "1Gi"]],
                ]],
                "dnsPolicy": "ClusterFirst",
            ]],
        ],
    ]

    @Test func serverDefaultsAndNormalizationAreNotADifference() {
        #expect(AppliedState.contains(live, desired))
    }

    @Test(arguments: [
        (["spec", "replicas"], JSONValue.number(3)),
        (["metadata", "labels", "a"], JSONValue.string("2")),
        (["spec", "template", "spec", "containers"], JSONValue.array([["name": "app", "image": "evil"]])),
        (["spec", "template", "spec", "containers"], JSONValue.array([])),
    ])
    func anEditToAnOwnedFieldIsADifference(path: [String], value: JSONValue) {
        #expect(!AppliedState.contains(setting(live, path, value), desired))
    }

    @Test func aMissingLabelIsADifference() {
        var edited = live
        edited["metadata"] = ["name": "w", "labels": ["added-by-someone": "x"]]
        #expect(!AppliedState.contains(edited, desired))
    }

    @Test func quantitiesCompareByValueOnlyUnderResourceKeys() {
        #expect(Quantity.equal("0.5", "500m"))
        #expect(Quantity.equal("1Gi", "1024Mi"))
        #expect(!Quantity.equal("1G", "1Gi"))
        let env: JSONValue = ["env": [["name": "X", "value": "1000"]]]
        let liveEnv: JSONValue = ["env": [["name": "X", "value": "1e3"]]]
        #expect(!AppliedState.contains(liveEnv, env))
    }

    func setting(_ value: JSONValue, _ path: [String], _ new: JSONValue) -> JSONValue {
        guard let first = path.first else { return new }
        var copy = value
        copy[first] = setting(value[first] ?? [:], Array(path.dropFirst()), new)
        return copy
    }
}
