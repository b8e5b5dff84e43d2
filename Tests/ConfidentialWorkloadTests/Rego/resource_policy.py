#!/usr/bin/env python3
"""Evaluates a Trustee KBS resource policy the way the KBS does: `data.policy.allow`, with the attestation
token's claims as `input` and the request (resource path, plugin) as `data`, in both regorus engines.

Usage: resource_policy.py REQUEST.json
REQUEST.json: {"policy": "<Rego>", "cases": [{"input": {...}, "data": {...}}, ...]}
Prints a JSON list with one [regorus 0.2.8 verdict, regorus 0.9 verdict] per case; a verdict is
true, false, "undefined" or {"error": "..."}.
"""
import json
import os
import sys
import tempfile

import opa_eval  # regorus 0.2.8
import regorus  # regorus 0.9 (celine-regorus), Rego v1 by default


def old_engine(path, case):
    try:
        value = opa_eval.OpaEval(path, data_json=json.dumps(case["data"]), query="data.policy.allow").evaluate_parsed(json.dumps(case["input"]))
        return "undefined" if value == "<undefined>" else value
    except Exception as error:
        return {"error": str(error)}


def new_engine(text, case):
    try:
        engine = regorus.Engine()
        engine.add_policy("policy.rego", text)
        engine.add_data_json(json.dumps(case["data"]))
        engine.set_input_json(json.dumps(case["input"]))
        result = json.loads(engine.eval_query_as_json("data.policy.allow"))
        expressions = [e for r in result.get("result", []) for e in r.get("expressions", [])]
        return expressions[0]["value"] if expressions else "undefined"
    except Exception as error:
        return {"error": str(error)}


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as handle:
        request = json.load(handle)
    with tempfile.NamedTemporaryFile("w", suffix=".rego", delete=False, encoding="utf-8") as policy:
        policy.write(request["policy"])
        path = policy.name
    try:
        json.dump([[old_engine(path, case), new_engine(request["policy"], case)] for case in request["cases"]], sys.stdout)
    finally:
        os.unlink(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
