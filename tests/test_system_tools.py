"""`make test` sets up the system tools the suite needs, from one list
(requirements/system.txt, read by tests/support/system_tools.py): it finds what is
missing, and where it cannot install it, it stops before running a single test
and prints the one command that installs it. (The install itself, by apt-get as
root, is what `make test` did on this project's fresh machines: docs/testing.md.)"""

import os
import re
import shutil
import subprocess
import sys

from bench.stack import ROOT
from tests.support import system_tools
from tests.support.system_tools import SystemPackage


def bin_dir(tmp_path, *commands: str):
    """A PATH directory holding only `commands`, linked from this machine's."""
    directory = tmp_path / "bin"
    directory.mkdir()
    for command in commands:
        found = shutil.which(command)
        assert found, command
        (directory / command).symlink_to(found)
    return directory


def test_the_list_names_every_tool_the_suite_looks_up():
    shown = {shown for package in system_tools.read_list() for shown in package.shows}
    looked_up = set()
    for folder in ("tests", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "system_tools.py":  # looks up apt-get and sudo, to install
                continue
            looked_up |= set(re.findall(r"""shutil\.which\(["']([\w.-]+)["']\)""",
                                        path.read_text()))
    assert {"go", "podman", "chromium", "prometheus", "docker-compose"} <= looked_up
    assert looked_up <= shown, f"not in requirements/system.txt: {looked_up - shown}"


def test_a_package_is_there_when_every_file_it_shows_is(tmp_path):
    directory = tmp_path / "tools"
    directory.mkdir()
    tool = directory / "resq-test-tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    present = SystemPackage("resq-tool", ("resq-test-tool", str(directory)))
    half = SystemPackage("resq-tools", ("resq-test-tool", "resq-test-other-tool"))
    assert present.missing(path=str(directory)) == []
    assert half.missing(path=str(directory)) == ["resq-test-other-tool"]
    assert present.missing(path=str(tmp_path)) == ["resq-test-tool"]


def test_a_bad_line_in_the_list_is_named(tmp_path):
    listed = tmp_path / "system.txt"
    listed.write_text("# comment\n\nredis-server redis-server  # why\npodman\n")
    try:
        system_tools.read_list(listed)
    except ValueError as error:
        assert f"{listed}:4" in str(error)
    else:
        raise AssertionError("a line without what shows the package went unnoticed")


def test_with_everything_there_nothing_is_installed(tmp_path):
    listed = tmp_path / "system.txt"
    listed.write_text(f"coreutils  cat,{sys.executable}\n")
    # No apt-get on this PATH: were anything missing, it would have to say so.
    result = subprocess.run([sys.executable, "-m", "tests.support.system_tools",
                             "--list", str(listed)], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "PATH": str(bin_dir(tmp_path, "cat"))})
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_make_test_stops_before_any_test_and_prints_the_command_where_it_cannot_install(
        tmp_path):
    """A PATH with make and no apt-get: as for a user without root or sudo, or off
    Debian. STAMP=Makefile lets make take the virtualenv as installed."""
    path = bin_dir(tmp_path, "make", "cat", "sha1sum", "cut")
    result = subprocess.run(["make", "test", "STAMP=Makefile",
                             "PYTEST_ARGS=--collect-only -q tests/test_reaper.py"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PATH": str(path)})
    assert result.returncode != 0
    names = [package.name for package in system_tools.read_list()]
    missing = [name for name in names if name in {"golang-go", "podman", "chromium"}]
    command = re.search(r"^    (sudo apt-get .+)$", result.stderr, re.M)
    assert command, result.stderr
    assert command.group(1).startswith("sudo apt-get update && sudo apt-get install -y")
    assert set(missing) <= set(command.group(1).split())
    assert "cannot be installed from here" in result.stderr
    # make stopped there: pytest never ran (it would have listed the tests it collected).
    assert "tests/test_reaper.py::" not in result.stdout


def test_the_command_for_the_whole_list_installs_every_package():
    result = subprocess.run([sys.executable, "-m", "tests.support.system_tools", "--command"],
                            cwd=ROOT, capture_output=True, text=True, check=True)
    words = result.stdout.split()
    for package in system_tools.read_list():
        assert package.name in words
