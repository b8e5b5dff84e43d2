#!/usr/bin/env python3
"""Evaluates Kata agent requests against a policy with regorus, the engine the Kata agent embeds.

Usage: evaluate.py REQUEST.json
REQUEST.json: {"policy": "<Rego text>", "queries": [{"endpoint": "CreateContainerRequest", "input": {...}}, ...]}
Prints a JSON list with one result per query: true, false, "undefined", or {"error": "..."}.
Uses opa-eval (PyPI), which embeds regorus 0.2.8, the version the agent pins.
"""
import json
import os
import sys
import tempfile

import opa_eval


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as handle:
        request = json.load(handle)
    with tempfile.NamedTemporaryFile("w", suffix=".rego", delete=False, encoding="utf-8") as policy:
        policy.write(request["policy"])
        path = policy.name
    results = []
    try:
        for query in request["queries"]:
            try:
                evaluator = opa_eval.OpaEval(path, query="data.agent_policy." + query["endpoint"])
                value = evaluator.evaluate_parsed(json.dumps(query["input"]))
                results.append("undefined" if value == "<undefined>" else value)
            except Exception as error:  # the engine's own message, for the test to show
                results.append({"error": str(error)})
    finally:
        os.unlink(path)
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
