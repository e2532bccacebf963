"""Verified, cached, resumable downloads of the registry's files.

    from facezoo.downloader import download_models
    summary = download_models(zoo.select("arcface"), output_dir="models")

Modules, one job each: `transfer` (HTTP/local fetch with retries and Range resumption),
`staging` (temporary files renamed into place), `verify` (size and sha256), `cache`
(content-addressed, shared between processes), `sources` (mirrors, then registry sources),
`unpack` (safe zip extraction), `progress` (rich / JSON lines / silent), `engine` (the whole).
"""

from facezoo.downloader.cache import CACHE_ENV, Cache, default_cache_dir
from facezoo.downloader.engine import DEFAULT_TIMEOUT, download_models, import_file
from facezoo.downloader.progress import JsonReporter, NullReporter, Reporter, RichReporter, make_reporter
from facezoo.downloader.results import DownloadSummary, FileResult, Status
from facezoo.downloader.sources import MIRROR_ENV, mirrors_from_env, split_mirror_list
from facezoo.downloader.unpack import extract_tar, extract_zip
from facezoo.downloader.verify import sha256_file

__all__ = [
    "CACHE_ENV",
    "DEFAULT_TIMEOUT",
    "MIRROR_ENV",
    "Cache",
    "DownloadSummary",
    "FileResult",
    "JsonReporter",
    "NullReporter",
    "Reporter",
    "RichReporter",
    "Status",
    "default_cache_dir",
    "download_models",
    "extract_tar",
    "extract_zip",
    "import_file",
    "make_reporter",
    "mirrors_from_env",
    "sha256_file",
    "split_mirror_list",
]
