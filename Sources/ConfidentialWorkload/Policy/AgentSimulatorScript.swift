/// The Kata agent's policy check, played in python3 with the Rego engines the agents embed: what the
/// policy tests and `cwo policy explain` run, so that both see the verdicts the agents would give.
public enum AgentSimulatorScript {
    /// A Python 3 program (run it as `python3 -c source JOB.json`); its docstring says what it reads and prints.
    public static let source = #"""
#!/usr/bin/env python3
"""Plays the Kata agent's policy check with both engines the agents embed.

Usage: python3 -c "$SOURCE" JOB.json
JOB.json: {"policy": "<Rego text>", "protos": "<folder of agent.proto, oci.proto, types.proto>" or null,
           "state": {...} (optional: data.pstate before each sequence, default empty),
           "sequences": [[{"endpoint": "CreateContainerRequest", "input": {...}, "queries": [...]}, ...], ...]}
Each sequence starts from the given policy state and runs in order, as one sandbox's requests do:
- with "protos", each input is first filled with the protobuf defaults of its message (the agent decodes
  the request and re-encodes it as JSON, so omitted fields arrive as "", 0, false, [], {} or null);
- `data.agent_policy.<endpoint>` is queried; undefined is a denial; an object answer
  {"allowed": ..., "ops": [...]} has its JSON-patch ops applied to `data.pstate` when allowed;
- the request's optional "queries" (rule names of the policy's package) are evaluated with the same input
  and state, for `cwo policy explain`.
Prints {"<engine>": [[{"allowed": bool, "values": [...]} or {"error": "..."}, ...], ...], ...} for
regorus 0.2.8 (opa-eval, the AKS agent; Rego v0 with future keywords) and regorus 0.9 (celine-regorus, the
upstream agent; Rego v1, its default), whichever of the two python3 has.
"""
import copy
import json
import os
import re
import sys
import tempfile

try:
    import opa_eval
except ImportError:
    opa_eval = None
try:
    import regorus
except ImportError:
    regorus = None

SCALARS = {"string": "", "bytes": "", "bool": False, "float": 0, "double": 0}
INTEGERS = {"int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32", "fixed64", "sfixed32", "sfixed64"}
FIELD = re.compile(r"^\s*(repeated\s+)?(map<[^>]+>|[\w.]+)\s+(\w+)\s*=\s*\d+")


def parse_protos(folder):
    """{message name: {field: (kind, type)}} and the set of enum names, from the .proto files."""
    messages, enums, current = {}, set(), None
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".proto"):
            continue
        for line in open(os.path.join(folder, name), encoding="utf-8"):
            line = line.split("//")[0]
            if match := re.match(r"^\s*message\s+(\w+)", line):
                current = messages.setdefault(match.group(1), {})
            elif match := re.match(r"^\s*enum\s+(\w+)", line):
                enums.add(match.group(1))
                current = None
            elif current is not None and (match := FIELD.match(line)) and match.group(2) not in ("option", "reserved"):
                kind = "map" if match.group(2).startswith("map<") else "repeated" if match.group(1) else "single"
                current[match.group(3)] = (kind, match.group(2).split(".")[-1])
    return messages, enums


def fill(value, message, protos):
    """`value` with every field of `message` present, as the agent re-encodes it."""
    messages, enums = protos
    if message not in messages or not isinstance(value, dict):
        return value
    out = dict(value)
    for field, (kind, type_name) in messages[message].items():
        present = out.get(field)
        if kind == "map":
            out[field] = present or {}
        elif kind == "repeated":
            out[field] = [fill(item, type_name, protos) for item in (present or [])]
        elif present is not None:
            out[field] = fill(present, type_name, protos)
        elif type_name in SCALARS:
            out[field] = SCALARS[type_name]
        elif type_name in INTEGERS or type_name in enums:
            out[field] = 0
        else:
            out[field] = None
    return out


# CopyFileRequest reaches the rules pre-processed (the agent's PolicyCopyFileRequest), not as its message.
COPY_FILE_DEFAULTS = {"path": "", "file_type": "Unknown", "symlink_target": None, "file_size": 0, "file_mode": 0,
                      "dir_mode": 0, "uid": 0, "gid": 0, "offset": 0}


def agent_input(endpoint, value, protos):
    if protos is None:
        return value
    if endpoint == "CopyFileRequest":
        return {**COPY_FILE_DEFAULTS, **value}
    return fill(value, endpoint, protos)


def apply_patch(state, ops):
    """JSON-patch (add, replace, remove) on {"pstate": ...}, enough for what policies write."""
    document = {"pstate": state}
    for op in ops:
        parts = [part.replace("~1", "/").replace("~0", "~") for part in op["path"].split("/")[1:]]
        parent = document
        for part in parts[:-1]:
            parent = parent[part]
        if op["op"] in ("add", "replace"):
            parent[parts[-1]] = op["value"]
        elif op["op"] == "remove":
            del parent[parts[-1]]
        else:
            raise ValueError("unsupported patch op " + op["op"])
    return document["pstate"]


def verdict(value):
    """(allowed, ops) from a rule's value, as the agent reads it."""
    if value is None:  # undefined
        return False, []
    if isinstance(value, bool):
        return value, []
    if isinstance(value, dict) and isinstance(value.get("allowed"), bool):
        return value["allowed"], value.get("ops") or []
    raise ValueError("unexpected result " + json.dumps(value))


class AKSEngine:
    name = "regorus-0.2.8"

    def __init__(self, path):
        self.path = path

    def query(self, endpoint, value, state):
        evaluator = opa_eval.OpaEval(self.path, data_json=json.dumps({"pstate": state}), query="data.agent_policy." + endpoint)
        result = evaluator.evaluate_parsed(json.dumps(value))
        return None if result == "<undefined>" else result


class UpstreamEngine:
    name = "regorus-0.9"

    def __init__(self, text):
        self.engine = regorus.Engine()
        self.engine.add_policy("agent_policy", text)

    def query(self, endpoint, value, state):
        engine = self.engine.clone()
        engine.add_data_json(json.dumps({"pstate": state}))
        engine.set_input_json(json.dumps(value))
        results = json.loads(engine.eval_query_as_json("data.agent_policy." + endpoint)).get("result", [])
        return results[0]["expressions"][0]["value"] if results else None


def first_lines(error):
    """The engine's message without the stack trace regorus appends."""
    return "\n".join(str(error).strip().split("\n")[:5])


def run(engine, sequences, protos, initial):
    outcomes = []
    for sequence in sequences:
        state, results = copy.deepcopy(initial), []
        for request in sequence:
            try:
                value = agent_input(request["endpoint"], request["input"], protos)
                values = [engine.query(rule, value, state) for rule in request.get("queries", [])]
                allowed, ops = verdict(engine.query(request["endpoint"], value, state))
                if allowed:
                    state = apply_patch(copy.deepcopy(state), ops)
                results.append({"allowed": allowed, "values": values})
            except Exception as error:  # the engine's own message, for the test to show
                results.append({"error": first_lines(error)})
        outcomes.append(results)
    return outcomes


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as handle:
        request = json.load(handle)
    protos = parse_protos(request["protos"]) if request.get("protos") else None
    with tempfile.NamedTemporaryFile("w", suffix=".rego", delete=False, encoding="utf-8") as policy:
        policy.write(request["policy"])
        path = policy.name
    output = {}
    try:
        engines = [(AKSEngine, path)] if opa_eval else []
        engines += [(UpstreamEngine, request["policy"])] if regorus else []
        for kind, argument in engines:
            try:
                output[kind.name] = run(kind(argument), request["sequences"], protos, request.get("state") or {})
            except Exception as error:  # the policy does not load
                output[kind.name] = [[{"error": first_lines(error)} for _ in sequence] for sequence in request["sequences"]]
    finally:
        os.unlink(path)
    json.dump(output, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
"""#
}
