"""`mypy --strict` on user code: the example client (bindings/python/
examples/link_client.py) and the package pass; code that misuses the
generated classes is rejected with the errors we expect, so the stubs
really carry the types."""

from __future__ import annotations

import os
import subprocess
import tempfile
from typing import List

from conftest import env_path


def mypy(files: List[str]) -> subprocess.CompletedProcess[str]:
    src = env_path("MYCELIUM_SOURCE_DIR")
    env = dict(os.environ, MYPYPATH=os.path.join(src, "bindings", "python") + os.pathsep
               + env_path("MYCELIUM_PY_GENERATED"))
    with tempfile.TemporaryDirectory(prefix="myc-mypy-") as cache:
        return subprocess.run([env_path("MYCELIUM_PYTHON"), "-m", "mypy", "--strict", "--no-error-summary",
                               "--cache-dir", cache] + files,
                              capture_output=True, text=True, timeout=240, env=env, cwd=src)


def test_example_and_package_pass_mypy_strict() -> None:
    src = env_path("MYCELIUM_SOURCE_DIR")
    r = mypy([os.path.join(src, "bindings", "python", "examples", "link_client.py"),
              os.path.join(src, "bindings", "python", "mycelium")])
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == ""


BAD = '''\
import test_messages as tm
import python_names as pn
from mycelium import link
o = tm.order(px="1.5")
o.side = 3
x: str = tm.leg().qty
tm.collections(levels=[1.0, "x"])
tm.order(nope=1)
y: int = tm.order.decode(b"").leg.venue
def f(lk: link.Link) -> None:
    s = lk.subscribe(tm.pong)
    z: tm.ping = s.get(1.0)
pn.lambda_(self_="no")
'''


def test_mypy_strict_rejects_misuse_of_generated_classes() -> None:
    with tempfile.TemporaryDirectory(prefix="myc-bad-") as d:
        path = os.path.join(d, "bad.py")
        with open(path, "w") as f:
            f.write(BAD)
        r = mypy([path])
    assert r.returncode == 1
    errors = [line.split(": error: ", 1)[1] for line in r.stdout.splitlines() if ": error: " in line]
    lines = [int(line.split(":")[1]) for line in r.stdout.splitlines() if ": error: " in line]
    assert lines == [4, 5, 6, 7, 8, 9, 12, 13], r.stdout
    assert 'Argument "px" to "order" has incompatible type "str"; expected "float"' in errors[0]
    assert 'expression has type "int", variable has type "side"' in errors[1]
    assert 'List item 1 has incompatible type "str"; expected "float"' in errors[3]
    assert 'Unexpected keyword argument "nope" for "order"' in errors[4]
    assert 'expression has type "pong", variable has type "ping"' in errors[6]
    assert 'Argument "self_" to "lambda_" has incompatible type "str"; expected "float"' in errors[7]
