"""`python -m tests.support.system_tools`: what `make test` does before it runs a
single test. It reads the system tools the suite needs (requirements/system.txt),
and where one is missing it installs the missing packages with apt-get, if it can
(as root, or through sudo without a password). Where it cannot, or apt-get fails,
it prints the one command that installs them and exits 1, so that `make test`
stops before any test instead of ending with a page of errors.

Standard library only: it runs before anything is known about the machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_LIST = ROOT / "requirements" / "system.txt"
# Where Debian puts what only root runs (debootstrap, iptables): not on a user's PATH.
SBIN = ("/usr/sbin", "/sbin")
APT_OPTIONS = ["-y", "-q", "--no-install-recommends"]


@dataclass(frozen=True)
class SystemPackage:
    """A Debian package of the list, and the files that show it is installed."""

    name: str
    shows: tuple[str, ...]
    """Commands (looked up on PATH, then in /usr/sbin) or absolute paths; all must exist."""

    def missing(self, path: str | None = None) -> list[str]:
        """What of `shows` this machine lacks (nothing: the package is there)."""
        search = os.pathsep.join([path if path is not None else os.environ.get("PATH", ""),
                                  *SBIN])
        return [shown for shown in self.shows
                if not (os.path.exists(shown) if shown.startswith("/")
                        else shutil.which(shown, path=search))]


def read_list(path: Path = SYSTEM_LIST) -> list[SystemPackage]:
    """The packages of a list: `name shows[,shows] # what needs it`, one a line."""
    packages = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.partition("#")[0].split()
        if not fields:
            continue
        if len(fields) != 2:
            raise ValueError(f"{path}:{number}: expected `package shows[,shows]`, got {line!r}")
        packages.append(SystemPackage(fields[0], tuple(fields[1].split(","))))
    return packages


def missing_packages(packages: list[SystemPackage]) -> list[SystemPackage]:
    return [package for package in packages if package.missing()]


def install_command(names: list[str]) -> str:
    """What a person with sudo types to install `names`."""
    return ("sudo apt-get update && sudo apt-get install "
            f"{' '.join(APT_OPTIONS)} {' '.join(names)}")


def apt_get() -> list[str] | None:
    """How this process may run apt-get: itself as root, through sudo where sudo asks
    no password, or not at all (None)."""
    binary = shutil.which("apt-get")
    if binary is None:
        return None
    if os.geteuid() == 0:
        return [binary]
    sudo = shutil.which("sudo")
    if sudo and subprocess.run([sudo, "-n", "true"], capture_output=True).returncode == 0:
        return [sudo, "-n", binary]
    return None


def install(apt: list[str], names: list[str]) -> str | None:
    """apt-get update, then install `names`; None, or why it failed."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Waits for another apt to finish rather than failing on its lock.
    lock = ["-o", "DPkg::Lock::Timeout=300"]
    for step in (["update", "-q"], ["install", *APT_OPTIONS, *names]):
        result = subprocess.run([*apt, *lock, *step], env=env, capture_output=True, text=True)
        if result.returncode != 0:
            return f"apt-get {step[0]} failed ({result.returncode}):\n" \
                   + (result.stderr or result.stdout)[-2000:]
    return None


def describe(packages: list[SystemPackage]) -> str:
    return "".join(f"\n    {package.name} (no {', '.join(package.missing())})"
                   for package in packages)


def cannot_install(packages: list[SystemPackage], why: str) -> int:
    names = [package.name for package in packages]
    print(f"make test: this machine lacks system tools the suite needs:{describe(packages)}\n"
          f"{why}\n"
          "Install them (Debian 12 or Ubuntu) with:\n\n"
          f"    {install_command(names)}\n\n"
          "then run `make test` again. `make test-fast` needs none of them.", file=sys.stderr)
    return 1


def ensure(packages: list[SystemPackage]) -> int:
    """0 once every package is there (installing what is missing where it can)."""
    missing = missing_packages(packages)
    if not missing:
        return 0
    apt = apt_get()
    if apt is None:
        return cannot_install(missing, "They cannot be installed from here: that takes "
                                       "apt-get, and root or sudo without a password.")
    names = [package.name for package in missing]
    how = "as root" if len(apt) == 1 else "through sudo"
    print(f"make test: installing what the suite needs with apt-get ({how}): "
          f"{' '.join(names)}", file=sys.stderr, flush=True)
    failure = install(apt, names)
    if failure:
        return cannot_install(missing, failure)
    still = missing_packages(missing)
    if still:
        return cannot_install(still, "apt-get installed them, but these are still missing.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.system_tools",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", type=Path, default=SYSTEM_LIST,
                        help="the packages (default: requirements/system.txt)")
    parser.add_argument("--command", action="store_true",
                        help="print the command that installs every package, and exit")
    args = parser.parse_args(argv)
    packages = read_list(args.list)
    if args.command:
        print(install_command([package.name for package in packages]))
        return 0
    return ensure(packages)


if __name__ == "__main__":
    sys.exit(main())
