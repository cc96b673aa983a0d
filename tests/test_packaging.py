"""What ships: the hash-pinned lock file the image installs from, and the dependency split."""

from __future__ import annotations

import ast
import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def locked() -> dict[str, tuple[str, list[str]]]:
    """Package -> (pinned version, its sha256 hashes), read from requirements.lock."""
    found: dict[str, tuple[str, list[str]]] = {}
    current = ""
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        if pin := _PIN.match(line):
            current = canonicalize_name(pin.group(1))
            assert current not in found, f"{current} is pinned twice"
            found[current] = (pin.group(2), [])
        elif digest := re.match(r"^\s+--hash=sha256:([0-9a-f]{64})", line):
            found[current][1].append(digest.group(1))
    return found


def runtime() -> list[Requirement]:
    return [Requirement(text) for text in PYPROJECT["project"]["dependencies"]]


def test_every_runtime_dependency_is_locked_at_its_pinned_version() -> None:
    pins = locked()
    for requirement in runtime():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in requirements.lock: run scripts/lock.sh"
        version, _ = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements.lock has {name}=={version}, pyproject.toml asks {requirement}: "
            "run scripts/lock.sh"
        )


def test_every_locked_package_has_hashes() -> None:
    pins = locked()
    assert len(pins) > len(runtime())
    for name, (_, hashes) in pins.items():
        assert hashes, f"{name} has no --hash in requirements.lock"


def test_the_tests_run_the_locked_versions() -> None:
    """The virtualenv the suite runs in holds what the image would install."""
    for name, (version, _) in locked().items():
        assert metadata.version(name) == version, name


def imported_modules() -> set[str]:
    """Top-level modules the application's code imports."""
    found: set[str] = set()
    for path in (ROOT / "app").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return found


def test_test_only_packages_are_not_shipped() -> None:
    pins = locked()
    for requirement in PYPROJECT["project"]["optional-dependencies"]["dev"]:
        name = canonicalize_name(Requirement(requirement).name)
        assert name not in pins, f"{name} is a dev dependency but requirements.lock ships it"
    assert "httpx" not in imported_modules()
    assert "httpx" not in pins


def test_the_image_installs_the_lock_with_hashes_then_the_app_alone() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "COPY requirements.lock" in dockerfile
    assert "pip install --no-cache-dir --require-hashes -r requirements.lock" in dockerfile
    assert "pip install --no-cache-dir --no-deps ." in dockerfile
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert "requirements.lock" not in ignored
