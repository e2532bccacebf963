"""Open Model Zoo style alias: `python converter.py --name NAME` = `facezoo convert --name NAME`."""

from facezoo.cli.common import run_alias

if __name__ == "__main__":
    run_alias("convert")
