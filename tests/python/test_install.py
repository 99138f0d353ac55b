"""`cmake --install --component python` installs the package with its
py.typed marker where /usr/bin/python3 imports it from."""

from __future__ import annotations

import os
import subprocess
import tempfile

from conftest import env_path


def test_cmake_install_component_python() -> None:
    with tempfile.TemporaryDirectory(prefix="myc-install-") as prefix:
        subprocess.run(["cmake", "--install", env_path("MYCELIUM_BUILD_DIR"), "--prefix", prefix,
                        "--component", "python"], check=True, capture_output=True, text=True, timeout=120)
        site = os.path.join(prefix, env_path("MYCELIUM_PYTHON_INSTALL_DIR"))
        installed = sorted(os.listdir(os.path.join(site, "mycelium")))
        assert installed == ["__init__.py", "__main__.py", "_core.py", "_hosting.py", "aio.py", "codec.py",
                             "doctor.py", "errors.py", "link.py", "node.py", "protocol.py", "py.typed",
                             "runtime.py", "service.py", "wire.py"]
        # The extension and its stub sit next to the package.
        beside = sorted(f for f in os.listdir(site) if f.startswith("_mycelium_core"))
        assert len(beside) == 2 and beside[0].endswith(".so") and beside[1] == "_mycelium_core.pyi", beside
        env = dict(os.environ, PYTHONPATH=site)
        r = subprocess.run([env_path("MYCELIUM_PYTHON"), "-c", "import mycelium, mycelium.link, mycelium.aio, mycelium.runtime; "
                            "print(mycelium.__file__, mycelium.__version__)"],
                           env=env, capture_output=True, text=True, timeout=60, cwd=prefix)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == [os.path.join(site, "mycelium", "__init__.py"), "0.1.0"]


def test_add_schema_refuses_a_module_name_python_cannot_import() -> None:
    with tempfile.TemporaryDirectory(prefix="myc-cmake-") as d:
        with open(os.path.join(d, "my-messages.toml"), "w") as f:
            f.write('package = "a"\n')
        with open(os.path.join(d, "CMakeLists.txt"), "w") as f:
            f.write("cmake_minimum_required(VERSION 3.20)\nproject(bad NONE)\n"
                    "add_executable(fake_codegen IMPORTED)\nadd_executable(mycelium::codegen ALIAS fake_codegen)\n"
                    "include(%s)\n" % os.path.join(env_path("MYCELIUM_SOURCE_DIR"), "cmake", "mycelium_schema.cmake")
                    # y first: a FATAL_ERROR stops the configure step
                    + "mycelium_add_schema(y SCHEMA my-messages.toml PYTHON py PYTHON_MODULE my_messages)\n"
                    + "mycelium_add_schema(x SCHEMA my-messages.toml PYTHON py)\n")
        r = subprocess.run(["cmake", "-S", d, "-B", os.path.join(d, "b")], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode != 0
        assert "mycelium_add_schema(x): 'my-messages' cannot be a Python module name" in r.stderr
        assert "mycelium_add_schema(y)" not in r.stderr  # PYTHON_MODULE was accepted before x failed
