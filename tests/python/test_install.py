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
        assert installed == ["__init__.py", "__main__.py", "aio.py", "codec.py", "doctor.py", "errors.py",
                             "link.py", "protocol.py", "py.typed", "wire.py"]
        env = dict(os.environ, PYTHONPATH=site)
        r = subprocess.run([env_path("MYCELIUM_PYTHON"), "-c", "import mycelium, mycelium.link, mycelium.aio; "
                            "print(mycelium.__file__, mycelium.__version__)"],
                           env=env, capture_output=True, text=True, timeout=60, cwd=prefix)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == [os.path.join(site, "mycelium", "__init__.py"), "0.1.0"]
