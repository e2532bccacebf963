"""Reference implementations that ship as sdists on the package index, fetched for tests.

pip downloads them through this machine's own index configuration (mirrors, proxies), as a user's
would; the sha256 pins the exact release. A failed download fails the test that needs it: these
references are required, not optional.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path


def fetch_sdist(requirement: str, filename: str, sha256: str, folder: Path) -> Path:
    """``requirement`` (``project==version``)'s sdist ``filename`` in ``folder``, its sha256 checked."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", requirement,
                    "-d", str(folder), "-q"], check=True, timeout=300)
    archive = Path(folder) / filename
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert digest == sha256, f"{filename}: sha256 {digest}, expected {sha256}"
    return archive
