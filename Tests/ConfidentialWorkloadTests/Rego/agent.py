#!/usr/bin/env python3
"""Plays the Kata agent's policy check with both engines the agents embed.

Usage: agent.py REQUEST.json
REQUEST.json: {"policy": "<Rego text>", "protos": "<folder of agent.proto, oci.proto, types.proto>" or null,
               "sequences": [[{"endpoint": "CreateContainerRequest", "input": {...}}, ...], ...]}
Each sequence starts from an empty policy state and runs in order, as one sandbox's requests do:
- with "protos", each input is first filled with the protobuf defaults of its message (the agent decodes
  the request and re-encodes it as JSON, so omitted fields arrive as "", 0, false, [], {} or null);
- `data.agent_policy.<endpoint>` is queried; undefined is a denial; an object answer
  {"allowed": ..., "ops": [...]} has its JSON-patch ops applied to `data.pstate` when allowed.
Prints {"<engine>": [[{"allowed": bool} or {"error": "..."}, ...], ...], ...} for
regorus 0.2.8 (opa-eval, the AKS agent; Rego v0 with future keywords) and regorus 0.9 (celine-regorus, the
upstream agent; Rego v1, its default).
"""
import copy
import json
import os
import re
import sys
import tempfile

import opa_eval
import regorus

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
        return False if result == "<undefined>" else result


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
        return results[0]["expressions"][0]["value"] if results else False


def run(engine, sequences, protos):
    outcomes = []
    for sequence in sequences:
        state, results = {}, []
        for request in sequence:
            try:
                allowed, ops = verdict(engine.query(request["endpoint"], agent_input(request["endpoint"], request["input"], protos), state))
                if allowed:
                    state = apply_patch(copy.deepcopy(state), ops)
                results.append({"allowed": allowed})
            except Exception as error:  # the engine's own message, for the test to show
                results.append({"error": str(error)})
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
        for kind, argument in ((AKSEngine, path), (UpstreamEngine, request["policy"])):
            try:
                output[kind.name] = run(kind(argument), request["sequences"], protos)
            except Exception as error:  # the policy does not load
                output[kind.name] = [[{"error": str(error)} for _ in sequence] for sequence in request["sequences"]]
    finally:
        os.unlink(path)
    json.dump(output, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
