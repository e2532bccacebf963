"""`pypi:PROJECT==VERSION` sources: a release file from the Python package index, found through the
index the user's own pip is configured with.

The index comes from pip's configuration, as pip itself would read it: PIP_INDEX_URL and
PIP_EXTRA_INDEX_URL, else `pip config` (pip.conf, PIP_CONFIG_FILE), else pypi.org. The project's
page of each index (the Simple API: PEP 691 JSON, or PEP 503 HTML) gives the file's URL; it is
then fetched like any other source (proxies from the environment, or pip's ``proxy`` setting),
and verified by size and sha256 as always. Nothing is built or installed: no package code runs.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass

import httpx

PREFIX = "pypi:"
DEFAULT_INDEX = "https://pypi.org/simple"
_ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"
_ANCHOR = re.compile(r"<a\s[^>]*?href\s*=\s*[\"']([^\"']+)[\"'][^>]*>\s*([^<]*?)\s*</a>", re.I | re.S)


class PackageIndexError(Exception):
    """The index does not give the file; str() says where it looked."""


@dataclass(frozen=True)
class IndexSettings:
    indexes: tuple[str, ...]
    proxy: str | None  # pip's own proxy setting, used when the environment names none
    where: str  # where the settings came from, for messages


def is_pypi(location: str) -> bool:
    return location.startswith(PREFIX)


def project_of(location: str) -> tuple[str, str | None]:
    """`pypi:name==1.0` → ("name", "1.0"); `pypi:name` → ("name", None)."""
    spec = location[len(PREFIX):].strip()
    name, _, version = spec.partition("==")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name.strip()):
        raise PackageIndexError(f"{location!r} is not pypi:PROJECT or pypi:PROJECT==VERSION")
    return name.strip(), version.strip() or None


def normalized(project: str) -> str:
    """The project's name as the Simple API spells it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", project).lower()


@functools.lru_cache(maxsize=None)
def _pip_config() -> dict[str, str]:
    """`pip config list` as key → value (e.g. ``global.index-url``); empty where pip cannot say."""
    try:
        done = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                              timeout=60, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    except (OSError, subprocess.SubprocessError):
        return {}
    values = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition("=")
        if key and value:
            values[key.strip()] = value.strip().strip("'\"")
    return values


def settings(environ: dict[str, str] | None = None) -> IndexSettings:
    environ = os.environ if environ is None else environ
    if environ.get("PIP_INDEX_URL") or environ.get("PIP_EXTRA_INDEX_URL"):
        indexes = [environ.get("PIP_INDEX_URL") or DEFAULT_INDEX, *shlex.split(environ.get("PIP_EXTRA_INDEX_URL", ""))]
        return IndexSettings(tuple(indexes), environ.get("PIP_PROXY") or None, "PIP_INDEX_URL / PIP_EXTRA_INDEX_URL")
    config = _pip_config()

    def setting(name: str) -> str | None:
        for scope in (":env:", "global", "download", "install"):
            if f"{scope}.{name}" in config:
                return config[f"{scope}.{name}"]
        return None

    main = setting("index-url")
    extra = shlex.split(setting("extra-index-url") or "")
    where = "pip config" if main or extra else "the default index"
    return IndexSettings((main or DEFAULT_INDEX, *extra), environ.get("PIP_PROXY") or setting("proxy"), where)


def client_for(index: IndexSettings, base: httpx.Client) -> httpx.Client:
    """``base``, unless pip's own proxy setting applies (the environment names no proxy)."""
    if index.proxy and not any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY",
                                                             "http_proxy", "ALL_PROXY", "all_proxy")):
        return httpx.Client(proxy=index.proxy, follow_redirects=True, timeout=base.timeout, headers=base.headers)
    return base


def resolve(location: str, filename: str, client: httpx.Client, index: IndexSettings | None = None) -> str:
    """The URL of ``filename`` among the release files of the ``pypi:`` location's project."""
    project, version = project_of(location)
    if version and version not in filename:
        raise PackageIndexError(f"{filename} is not a file of {project} {version}")
    index = index or settings()
    looked = []
    for base in index.indexes:
        page = f"{base.rstrip('/')}/{normalized(project)}/"
        try:
            response = client.get(page, headers={"Accept": _ACCEPT})
        except httpx.HTTPError as exc:
            looked.append(f"{page}: {exc}")
            continue
        if response.status_code != 200:
            looked.append(f"{page}: HTTP {response.status_code}")
            continue
        for name, url in _files(response):
            if name == filename:
                return urllib.parse.urljoin(str(response.url), url.split("#", 1)[0])
        looked.append(f"{page}: no {filename} among the project's files")
    raise PackageIndexError(f"{filename} not found through the package index ({index.where}): " + "; ".join(looked))


def _files(response: httpx.Response) -> list[tuple[str, str]]:
    """(file name, URL) of every file a Simple API project page lists."""
    kind = response.headers.get("content-type", "")
    if "json" in kind:
        try:
            document = json.loads(response.content)
        except ValueError:
            return []
        return [(f.get("filename", ""), f.get("url", "")) for f in document.get("files", []) if isinstance(f, dict)]
    text = response.text
    return [(name.strip(), href) for href, name in _ANCHOR.findall(text)]


__all__ = ["DEFAULT_INDEX", "PackageIndexError", "IndexSettings", "PREFIX", "client_for", "is_pypi", "normalized",
           "project_of", "resolve", "settings"]
