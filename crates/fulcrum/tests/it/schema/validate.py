"""Validates TOML config files against config/fulcrum.schema.json with python-jsonschema
(an implementation we did not write): prints each violation, exits 1 if any.

    python3 validate.py SCHEMA FILE...
"""
import json, sys, tomllib, jsonschema
schema = json.load(open(sys.argv[1]))
v = jsonschema.Draft202012Validator(schema)
bad = 0
for path in sys.argv[2:]:
    data = tomllib.load(open(path, 'rb'))
    errs = sorted(v.iter_errors(data), key=lambda e: list(e.path))
    for e in errs:
        bad += 1
        print(f"{path}: {'.'.join(map(str, e.path))}: {e.message[:200]}")
    if not errs:
        print(f"{path}: valid")
sys.exit(1 if bad else 0)
