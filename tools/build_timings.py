#!/usr/bin/env python3
"""The slowest compile units of the last `cargo ... --timings` run.

Reads target/cargo-timings/cargo-timing.html (cargo writes the units as a
JSON array `UNIT_DATA` in it) and prints the units that took longest, with
their share of the summed compile time: where a CI build's minutes go
(issue 36, docs/benchmarks.md "Build").

    python3 tools/build_timings.py [HTML] [--top N]
"""
import json
import re
import sys


def units(path):
    text = open(path, encoding="utf-8").read()
    m = re.search(r"const UNIT_DATA = (\[.*?\]);\n", text, re.S)
    if not m:
        sys.exit(f"{path}: no UNIT_DATA array (not a cargo --timings report?)")
    return json.loads(m.group(1))


def main():
    args = sys.argv[1:]
    top = 20
    if "--top" in args:
        i = args.index("--top")
        top = int(args[i + 1])
        del args[i : i + 2]
    path = args[0] if args else "target/cargo-timings/cargo-timing.html"
    data = units(path)
    total = sum(u["duration"] for u in data)
    wall = max((u["start"] + u["duration"] for u in data), default=0)
    print(f"{len(data)} units, {total:.0f} s of compile summed, {wall:.0f} s wall")
    for u in sorted(data, key=lambda u: -u["duration"])[:top]:
        what = f'{u["name"]} {u.get("target", "").strip()}'.strip()
        mode = u.get("mode", "")
        print(f'{u["duration"]:8.1f} s  {100 * u["duration"] / total:5.1f} %  {what} ({mode})')


if __name__ == "__main__":
    main()
