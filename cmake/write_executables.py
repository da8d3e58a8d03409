"""Write the package's executables (called by CMakeLists.txt at configure time).

``NODES`` of rynnvla_ros/executables.py become ``<out>/nodes/<name>`` (installed to lib/rynnvla_ros) and
``[project.scripts]`` of pyproject.toml become ``<out>/scripts/<name>`` (installed to bin). Each is a short launcher
run by the configured interpreter.
"""

import runpy
import shutil
import sys
import tomllib
from pathlib import Path

SCRIPT = """#!{python}
import sys
from {module} import {func}
sys.exit({func}())
"""
NODE = """#!{python}
import sys
from rynnvla_ros.node_runner import main
sys.exit(main({target!r}))
"""


def main() -> None:
    pyproject, out, python = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    scripts = tomllib.loads(pyproject.read_text())["project"]["scripts"]
    nodes = runpy.run_path(str(pyproject.parent / "rynnvla_ros" / "executables.py"))["NODES"]
    shutil.rmtree(out, ignore_errors=True)
    (out / "nodes").mkdir(parents=True)
    (out / "scripts").mkdir(parents=True)
    for name, target in nodes.items():
        _write(out / "nodes" / name, NODE.format(python=python, target=target))
    for name, target in scripts.items():
        module, func = target.split(":")
        _write(out / "scripts" / name, SCRIPT.format(python=python, module=module, func=func))


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


if __name__ == "__main__":
    main()
