"""The files around the code: licence, release notes, and the README's PromQL."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from observer import __version__
from tests.promql import metric_names, recorded_series

ROOT = Path(__file__).resolve().parents[1]


def test_the_licence_file_matches_the_package_metadata() -> None:
    metadata = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert metadata["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_the_upgrade_guide_points_to_release_notes_that_exist() -> None:
    guide = (ROOT / "docs" / "deployment.md").read_text()
    upgrading = guide.split("## Upgrading", 1)[1]
    link = re.search(r"release notes \(\[CHANGELOG\.md\]\(([^)]+)\)\)", upgrading)
    assert link is not None
    changelog = (ROOT / "docs" / link.group(1)).resolve()
    assert changelog == ROOT / "CHANGELOG.md"
    headings = re.findall(r"^## (.+)$", changelog.read_text(), re.MULTILINE)
    assert headings[0] == "Unreleased" or headings[0].startswith(__version__)
    assert __version__ in headings


def test_the_readme_promql_reads_the_recording_rules_docs_promql_recommends() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"^```promql\n(.*?)^```$", readme, re.MULTILINE | re.DOTALL)
    expressions = [line for block in blocks for line in block.splitlines() if line.strip()]
    assert len(expressions) >= 5
    recorded = recorded_series()
    documented = (ROOT / "docs" / "promql.md").read_text()
    for expression in expressions:
        names = metric_names(expression)
        assert names and names <= recorded, expression
        # The raw increase() over a window shows 0 for series born inside it.
        assert "increase(" not in expression
        for name in names:
            assert f"`{name}`" in documented or name.rsplit(":", 1)[-1] in documented, name
