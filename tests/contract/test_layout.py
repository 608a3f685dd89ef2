"""README.md's layout table names every module of the package, so a newcomer who reads it finds
each file where the table says (a module added without a line there fails here)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "src" / "artifact_operator"


def _layout_rows() -> dict[str, str]:
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = re.match(r"\| `(src/artifact_operator/[a-z_]+/)` \| (.*) \|$", line)
        if match:
            rows[match[1]] = match[2]
    return rows


def test_every_module_is_in_the_readme_layout_table() -> None:
    rows = _layout_rows()
    missing = []
    for module in sorted(PACKAGE.glob("*/*.py")):
        if module.name == "__init__.py":
            continue
        package = f"src/artifact_operator/{module.parent.name}/"
        if f"`{module.name}`" not in rows.get(package, ""):
            missing.append(str(module.relative_to(REPO)))
    assert not missing, f"not in README.md's layout table: {missing}"


def test_the_layout_table_names_no_module_that_does_not_exist() -> None:
    for package, text in _layout_rows().items():
        for name in re.findall(r"`([a-z_]+\.py)`", text):
            assert (REPO / package / name).is_file(), f"README.md names {package}{name}"
