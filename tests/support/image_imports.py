"""`python tests/support/image_imports.py REQUIREMENTS[,REQUIREMENTS] PACKAGE... [-- MODULE...]`:
import every module of PACKAGE... (and each MODULE) as an image would, where only the distributions
pinned in the REQUIREMENTS files (and what they include with `-r`) are installed.
This virtualenv has everything (dev requirements), so a finder refuses any module
whose distribution the files do not pin. Prints {module: error} as JSON for each
module that could not be imported."""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import json
import pkgutil
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# Always in a virtualenv made by `python -m venv`, and this project itself.
ALWAYS = {"pip", "setuptools", "resq"}


def pinned(path: Path) -> set[str]:
    """The distribution names a requirements file pins, following `-r` includes."""
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r"):
            names |= pinned(path.parent / line[2:].strip())
        elif line:
            names.add(canonicalize_name(Requirement(line).name))
    return names


class Uninstalled:
    """A meta path finder that hides the modules of distributions not installed."""

    def __init__(self, installed: set[str]):
        self.installed = installed
        self.owners = metadata.packages_distributions()

    def find_spec(self, name, path=None, target=None):
        owners = self.owners.get(name.partition(".")[0], [])
        if owners and not any(canonicalize_name(owner) in self.installed for owner in owners):
            raise ModuleNotFoundError(
                f"No module named {name!r} ({', '.join(owners)} is not in the image)",
                name=name)
        return None


def main(argv: list[str]) -> int:
    installed = set(ALWAYS)
    for requirements in argv[0].split(","):
        installed |= pinned(Path(requirements))
    sys.meta_path.insert(0, Uninstalled(installed))
    names = argv[1:]
    packages, modules = (names[:names.index("--")], names[names.index("--") + 1:]) \
        if "--" in names else (names, [])
    failed = {}
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as error:
            failed[name] = str(error)
    for package in packages:
        root = importlib.import_module(package)
        for module in pkgutil.walk_packages(root.__path__, f"{package}."):
            if module.name.endswith("__main__"):
                continue
            try:
                importlib.import_module(module.name)
            except ImportError as error:
                failed[module.name] = str(error)
    print(json.dumps(failed, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
