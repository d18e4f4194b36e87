#!/usr/bin/env python3
"""Check one `clsnap ... --json` output against docs/clsnap.schema.json.

  schema_check.py SCHEMA DEF OUTPUT [--expect JSON] [--ids JSON] [--error JSON]

OUTPUT (a file, or - for stdin) must be exactly one JSON document, valid
against the whole schema (its oneOf) and against its definition DEF
("run", "snapshot", "error", ...). With --expect, every key of that JSON
object must be in the output with the same value; for DEF "error" the
keys are those of the error object, which must have exactly the keys given
besides "message" (so an error whose server or file was expected but left
out fails, and so does one that names a server where none was expected).
--error checks the "error" member of any result that way (a run that
stopped early). With --ids, the ids of
the output's "servers" list must be that list, in that order. The expected
values come from the test, written by hand, never from the output.

Exits 0 when all holds; 1 naming what does not (or when the jsonschema
module is missing: the tests need it, see scripts/lib.sh); 2 on bad usage.
"""
import argparse
import json
import sys

INSTALL = "sudo apt-get install -y python3-jsonschema"


def load_validator():
    """The Draft 2020-12 validator class, or exit 1 with the install line."""
    try:
        import jsonschema
    except ImportError:
        print("schema_check: the python3 jsonschema module is missing; run:\n"
              f"  {INSTALL}", file=sys.stderr)
        sys.exit(1)
    return jsonschema.Draft202012Validator


def errors(validator_cls, schema, instance):
    """Each validation error as one line, deepest first."""
    v = validator_cls(schema)
    out = []
    for e in sorted(v.iter_errors(instance), key=lambda e: -len(e.path)):
        where = "/".join(str(p) for p in e.absolute_path) or "(top)"
        out.append(f"{where}: {e.message[:300]}")
        for sub in (e.context or [])[:6]:
            subwhere = "/".join(str(p) for p in sub.absolute_path) or "(top)"
            out.append(f"    {subwhere}: {sub.message[:200]}")
    return out


def error_mismatches(got, expect):
    """What in an error object differs: expect's values, and no other key
    than expect's and "message"."""
    out = [f"error {k}: {json.dumps(got.get(k))}, expected {json.dumps(v)}"
           for k, v in expect.items() if got.get(k) != v]
    out += [f"error {k}: {json.dumps(got[k])} given, none expected"
            for k in sorted(set(got) - set(expect) - {"message"})]
    return out


def mismatches(defn, doc, expect, ids, error):
    """What in doc differs from the hand-written expectations."""
    out = []
    if error is not None:
        out += error_mismatches(doc.get("error") or {}, error)
    if ids is not None:
        got_ids = [s.get("id") if isinstance(s, dict) else s
                   for s in doc.get("servers", [])]
        if got_ids != ids:
            out.append(f"servers: ids {json.dumps(got_ids)}, expected "
                       f"{json.dumps(ids)}")
    if defn == "error":
        return out + error_mismatches(doc.get("error") or {}, expect)
    for k, want in expect.items():
        if k not in doc:
            out.append(f"{k}: missing, expected {json.dumps(want)}")
        elif doc[k] != want:
            out.append(f"{k}: {json.dumps(doc[k])}, expected {json.dumps(want)}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("schema")
    ap.add_argument("defn")
    ap.add_argument("output")
    ap.add_argument("--expect", type=json.loads, default={})
    ap.add_argument("--ids", type=json.loads)
    ap.add_argument("--error", type=json.loads)
    a = ap.parse_args()
    validator_cls = load_validator()
    with open(a.schema) as f:
        schema = json.load(f)
    if a.defn not in schema.get("$defs", {}):
        print(f"schema_check: no definition {a.defn!r} in {a.schema}",
              file=sys.stderr)
        return 2
    text = sys.stdin.read() if a.output == "-" else open(a.output).read()
    try:
        doc = json.loads(text)  # one document, nothing before or after it
    except ValueError as e:
        print(f"schema_check: {a.output}: not exactly one JSON document: {e}\n"
              f"--- output ---\n{text[:2000]}", file=sys.stderr)
        return 1
    validator_cls.check_schema(schema)
    one = dict(schema)
    one.pop("oneOf")
    one["$ref"] = f"#/$defs/{a.defn}"
    problems = [f"as {a.defn}: {p}" for p in errors(validator_cls, one, doc)]
    problems += [f"as any output: {p}"
                 for p in errors(validator_cls, schema, doc)][:4]
    problems += [f"expected {p}" for p in mismatches(a.defn, doc, a.expect, a.ids, a.error)]
    if problems:
        print(f"schema_check: {a.output} ({a.defn}):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        print(f"--- output ---\n{text[:3000]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
