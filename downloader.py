#!/usr/bin/env python3
"""Open Model Zoo style entry point: `python downloader.py --name arcface -o models`."""

from facezoo.cli.common import run_alias

if __name__ == "__main__":
    run_alias("download")
