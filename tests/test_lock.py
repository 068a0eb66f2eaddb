"""The lock files: every dependency pinned with hashes, and the image and CI install from them.

``requirements.lock`` (runtime) and ``requirements-test.lock`` (runtime and test) are written by
``.ci/lock`` from pyproject.toml. These tests catch a dependency added to pyproject without a
refresh, a lock that no longer satisfies pyproject's ranges, and an install step that resolves on
its own instead of reading the lock.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests import dockerfile

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_LOCK = ROOT / "requirements.lock"
TEST_LOCK = ROOT / "requirements-test.lock"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")
HASH = re.compile(r"^\s+--hash=sha256:[0-9a-f]{64}\s*\\?$")


@dataclass
class Pin:
    version: Version
    marker: Marker | None
    hashes: int


def pins(path: Path) -> dict[str, Pin]:
    """Name -> pinned version, marker and number of hashes, as pip reads the lock."""
    found: dict[str, Pin] = {}
    current: Pin | None = None
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pinned = PIN.match(line)
        if pinned:
            name, version, marker = pinned.groups()
            assert canonicalize_name(name) not in found, f"{name} pinned twice in {path.name}"
            current = Pin(Version(version), Marker(marker) if marker else None, 0)
            found[canonicalize_name(name)] = current
        elif HASH.match(line) and current is not None:
            current.hashes += 1
        else:
            raise AssertionError(f"{path.name}: not a pin nor a hash: {line!r}")
    return found


def project() -> dict[str, list[Requirement]]:
    """pyproject's requirements: "runtime", and each extra by name."""
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"runtime": [Requirement(text) for text in table["dependencies"]]}
    for extra, texts in table.get("optional-dependencies", {}).items():
        # An extra may name another of observer's own (the tests need the bucket extra's).
        requirements = [Requirement(text) for text in texts]
        groups[extra] = [r for r in requirements if canonicalize_name(r.name) != "observer"]
    return groups


def closure(requirements: list[Requirement]) -> set[str]:
    """Every distribution these requirements bring in on this interpreter, extras followed, read
    from the installed distributions' own metadata (CI installs them from the lock)."""
    seen: set[str] = set()
    pending = [(requirement, "") for requirement in requirements]
    while pending:
        requirement, extra = pending.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        extras = sorted(requirement.extras)
        key = f"{name}[{','.join(extras)}]"
        if key in seen:
            continue
        seen.add(key)
        needs = [Requirement(text) for text in metadata.distribution(name).requires or []]
        for wanted in ["", *extras]:
            pending += [(need, wanted) for need in needs]
    return {key.split("[")[0] for key in seen}


@pytest.mark.parametrize(
    ("lock", "groups"),
    # The image installs the bucket extra too (STATE_URL=gs://, s3://, az://).
    [(RUNTIME_LOCK, ["runtime", "bucket"]), (TEST_LOCK, ["runtime", "bucket", "test"])],
    ids=["runtime", "test"],
)
def test_the_lock_pins_every_dependency_with_hashes(lock: Path, groups: list[str]) -> None:
    locked = pins(lock)
    declared = project()
    for group in groups:
        for requirement in declared[group]:
            pin = locked.get(canonicalize_name(requirement.name))
            assert pin is not None, f"{requirement.name} is not in {lock.name}: run .ci/lock"
            assert requirement.specifier.contains(pin.version, prereleases=True), (
                f"{lock.name} pins {requirement.name} {pin.version}, outside {requirement}: "
                "run .ci/lock"
            )
    # What the direct dependencies bring in, extras included (uvicorn[standard]'s uvloop...).
    wanted = closure([requirement for group in groups for requirement in declared[group]])
    missing = sorted(wanted - set(locked))
    assert not missing, f"not in {lock.name}: {missing}: run .ci/lock"
    unhashed = sorted(name for name, pin in locked.items() if pin.hashes == 0)
    assert not unhashed, f"pinned without a hash in {lock.name}: {unhashed}"


def test_the_test_lock_pins_the_runtime_dependencies_as_the_runtime_lock_does() -> None:
    runtime, test = pins(RUNTIME_LOCK), pins(TEST_LOCK)
    assert {name: test[name].version for name in runtime if name in test} == {
        name: pin.version for name, pin in runtime.items()
    }


def test_the_ranges_stop_before_releases_that_may_change_the_internals_we_read() -> None:
    """A `pip install .` outside the lock takes no untried release of these."""
    runtime = {canonicalize_name(r.name): r for r in project()["runtime"]}
    for name in ("prometheus-client", "starlette", "uvicorn"):
        assert any(spec.operator == "<" for spec in runtime[name].specifier), runtime[name]


def pip_installs(commands: str) -> list[list[str]]:
    """The arguments of every `pip install` in a shell text, `&&`-chained commands split."""
    found: list[list[str]] = []
    for line in commands.replace("\\\n", " ").replace("&&", "\n").splitlines():
        words = shlex.split(line, comments=True)
        if "pip" in words and "install" in words[words.index("pip") :]:
            found.append(words[words.index("install") + 1 :])
    return found


def assert_installs_from(installs: list[list[str]], lock: str) -> None:
    """The first install is the lock's, hash-checked; every other one adds nothing to resolve."""
    assert installs, "no pip install"
    first, *rest = installs
    assert "--require-hashes" in first and ["-r", lock] == first[first.index("-r") :][:2], first
    for words in rest:
        assert "--no-deps" in words, words
        assert "-r" not in words, words


def test_the_image_installs_from_the_runtime_lock() -> None:
    builder = dockerfile.stages()[0]
    copied = [word for item in builder.all("COPY") for word in item.arguments.split()[:-1]]
    assert "requirements.lock" in copied
    commands = "\n".join(item.arguments for item in builder.all("RUN"))
    assert_installs_from(pip_installs(commands), "requirements.lock")


def test_ci_installs_from_the_test_lock() -> None:
    commands = (ROOT / ".ci" / "run").read_text()
    assert_installs_from(pip_installs(commands), "requirements-test.lock")
