"""One version, reported everywhere: ``propy --version`` prints it."""
from __future__ import annotations

import subprocess
import sys

from propy import __version__
from tests.conftest import REPO


def test_version_flag_prints_the_package_version():
    out = subprocess.run([sys.executable, "-m", "propy", "--version"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"propy {__version__}"

