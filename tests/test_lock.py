"""requirements.lock pins every dependency that pyproject.toml names, so a fresh install gets the study's versions."""

import re

import pytest
import tomllib
from conftest import REPO

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")


def normalise(name: str) -> str:
    """PEP 503 name: case, '_' and '.' do not matter (open_clip_torch == open-clip-torch)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> list[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    specs = project["dependencies"] + project["optional-dependencies"]["dev"]
    return [normalise(NAME.match(spec).group()) for spec in specs]


def pins(text: str) -> dict[str, str]:
    """{name: version} of the lines ``name==version`` (comments and ``# via`` lines skipped)."""
    out = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", line)
        if match:
            out[normalise(match.group(1))] = match.group(2)
    return out


def test_every_declared_dependency_is_pinned():
    pinned = pins((REPO / "requirements.lock").read_text(encoding="utf-8"))
    assert len(declared()) >= 15
    missing = [name for name in declared() if name not in pinned]
    assert not missing, f"not pinned with == in requirements.lock: {', '.join(missing)}"


def test_lock_lines_are_exact_pins_only():
    """Every requirement line is ``name==version``: no ranges, no unpinned names."""
    text = (REPO / "requirements.lock").read_text(encoding="utf-8")
    requirements = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert len(requirements) == len(pins(text)) > 100  # transitive dependencies too


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Open_Clip.Torch==3.3.0\n    # via propy\n", {"open-clip-torch": "3.3.0"}),
        ("torch>=2.4\n# numpy==1.0\n", {}),
    ],
)
def test_pins_parses_exact_pins_only(text, expected):
    assert pins(text) == expected
