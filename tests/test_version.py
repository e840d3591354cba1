"""One version, reported everywhere: ``propy --version`` prints it and the changelog documents it."""

from __future__ import annotations

import re
import subprocess
import sys

from propy import __version__
from tests.conftest import REPO


def test_version_flag_prints_the_package_version():
    out = subprocess.run(
        [sys.executable, "-m", "propy", "--version"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == f"propy {__version__}"


def test_changelog_has_unreleased_first_then_the_current_version():
    headings = re.findall(r"^## \[([^\]]+)\]", (REPO / "CHANGELOG.md").read_text(), flags=re.M)
    assert headings[0] == "Unreleased"
    assert __version__ in headings[1:]
