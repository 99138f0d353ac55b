"""``python3 -m mycelium.node``: a Python node of a topology (what
mycelium-run starts for ``runtime = "python"``).

It runs the C++ node main inside this process (the same options, control
protocol, readiness and exit codes as a C++ node binary; docs/topology.md),
with the node's Python services (``type = "python:pkg.module:Class"``) on
threads of their own. The schema comes from ``--schema MODULE``, else from
the node's service classes (their ``schema`` attribute or handlers).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from .codec import Schema

USAGE_EXIT = 2


def _schema_from_topology(path: str, node: str) -> Schema:
    import tomllib
    from ._hosting import resolve
    with open(path, "rb") as f:
        t = tomllib.load(f)
    services: List[str] = []
    for n in t.get("nodes", []):
        if n.get("name") == node:
            services = list(n.get("services", []))
    table = t.get("services", {})
    for s in services:
        type_name = table.get(s, {}).get("type", s)
        if isinstance(type_name, str) and type_name.startswith("python:"):
            schema = resolve(type_name).schema_object()
            if schema is not None:
                return schema
    raise ValueError("node %r of %s runs no Python service whose class names a schema; "
                     "give --schema MODULE" % (node, path))


def main(argv: Optional[List[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(
        prog="python3 -m mycelium.node", add_help=False,
        description="Runs one node of a topology.toml in this Python process (usually started "
                    "by mycelium-run for runtime = \"python\"). Other options are the C++ "
                    "node's: --topology FILE --node NAME --control-fd N --ready-timeout MS "
                    "--describe --list-types.")
    p.add_argument("--schema", help="the generated Python module of the topology's schema "
                                    "(default: from the node's service classes)")
    p.add_argument("--topology")
    p.add_argument("--node")
    p.add_argument("-h", "--help", action="store_true")
    known, _rest = p.parse_known_args(args)
    if known.help:
        p.print_help()
        print()
    try:
        from . import _core
        from .runtime import runtime_schema
    except ImportError as e:
        print("mycelium.node: error: %s" % e, file=sys.stderr)
        return USAGE_EXIT
    # --schema is ours: the C++ main does not know it.
    passed: List[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
        elif a == "--schema":
            skip = True
        elif not a.startswith("--schema="):
            passed.append(a)
    schema: Optional[Schema] = None
    try:
        if known.schema:
            schema = getattr(importlib.import_module(known.schema), "SCHEMA")
        elif known.topology and known.node:
            schema = _schema_from_topology(known.topology, known.node)
    except Exception as e:  # a clear one-line error, as the C++ node gives
        print("mycelium.node: error: %s" % e, file=sys.stderr)
        return USAGE_EXIT
    if schema is not None:
        try:
            rs = runtime_schema(schema)
        except (ImportError, ValueError) as e:  # MYCELIUM_NATIVE=1 without a native module
            print("mycelium.node: error: %s" % e, file=sys.stderr)
            return USAGE_EXIT
    elif known.help or "--list-types" in passed:
        # Neither needs the schema: any announcement will do.
        rs = _core.RawSchema("mycelium.none", bytes(32), [(1, "none", bytes(32))])
    else:
        print("mycelium.node: error: give --topology FILE and --node NAME (or --help)",
              file=sys.stderr)
        return USAGE_EXIT
    return int(_core.node_main(["python3 -m mycelium.node"] + passed, rs))


if __name__ == "__main__":
    sys.exit(main())
