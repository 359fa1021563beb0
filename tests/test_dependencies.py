"""The lock (scripts/constraints.txt) and pyproject.toml agree, and the environment is the locked one."""
import os
import sysconfig
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def locked():
    pins = {}
    for line in (ROOT / "scripts" / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version.strip(), f"constraints.txt: {line!r} is not name==version"
            pins[canonicalize_name(name)] = Version(version.strip())
    return pins


def declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [r for group in project.get("optional-dependencies", {}).values() for r in group]
    return [Requirement(r) for r in project["dependencies"] + extras]


@pytest.mark.parametrize("requirement", declared(), ids=str)
def test_every_declared_dependency_is_locked_at_a_version_it_allows(requirement):
    pins = locked()
    name = canonicalize_name(requirement.name)
    assert name in pins, f"{requirement.name} is in pyproject.toml but not in scripts/constraints.txt (scripts/lock.sh)"
    assert requirement.specifier.contains(pins[name], prereleases=True), (
        f"pyproject.toml asks for {requirement}, the lock pins {pins[name]}: change one of them")


@pytest.mark.skipif(os.environ.get("YOLO_ATTN_LATEST") == "1", reason="installed with the newest versions, not the lock")
def test_the_environment_is_the_locked_one():
    pins = locked()
    different = {}
    for dist in metadata.distributions(path=[sysconfig.get_paths()["purelib"]]):  # the environment's own packages
        name = canonicalize_name(dist.metadata["Name"])
        if name in pins and Version(dist.version) != pins[name]:
            different[name] = (dist.version, str(pins[name]))
    assert different == {}, f"installed vs locked: {different}; run scripts/setup.sh (or scripts/lock.sh after the " \
                            f"tests passed with the new versions)"
