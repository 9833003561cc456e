#!/usr/bin/env python3
"""Generate data/create-only-properties.json: for each CloudFormation resource
type, the properties whose change forces replacement ("createOnlyProperties"
in AWS's published resource schemas, as bundled with cfn-lint).

    python3 tools/gen_create_only.py        # after `pip install -r tools/requirements.txt`

The output is committed; `lakectl diff` embeds it. Paths are JSON pointers
below /properties, e.g. "VpcId" or "BrokerNodeGroupInfo/ClientSubnets".
"""

import importlib
import json
import os

import cfnlint
from importlib.metadata import version

SCHEMAS = os.path.join(os.path.dirname(cfnlint.__file__), "data", "schemas", "resources")
OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "create-only-properties.json")


def main():
    types = importlib.import_module("cfnlint.data.schemas.providers.us_east_1").types
    table = {}
    for name in sorted(types):
        with open(os.path.join(SCHEMAS, f"{types[name]}.json")) as f:
            schema = json.load(f)
        paths = sorted(p.removeprefix("/properties/") for p in schema.get("createOnlyProperties", []))
        if paths:
            table[name] = paths
    with open(OUT, "w") as f:
        f.write("{\n")
        f.write(f'  "_source": "createOnlyProperties of cfn-lint {version("cfn-lint")} resource schemas (us-east-1); regenerate with tools/gen_create_only.py",\n')
        rows = [f"  {json.dumps(t)}: {json.dumps(p)}" for t, p in table.items()]
        f.write(",\n".join(rows))
        f.write("\n}\n")
    print(f"{len(table)} resource types -> {OUT}")


if __name__ == "__main__":
    main()
