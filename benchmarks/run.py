"""The benchmark suite: `python benchmarks/run.py` (see benchmarks/README.md)."""

from facezoo.cli.suite import main

if __name__ == "__main__":
    main()
