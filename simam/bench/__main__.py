"""``simam-bench NAME [options]`` (or ``python -m simam.bench NAME [options]``): run the benchmark
``simam.bench.NAME``."""

import importlib
import sys

import simam.bench


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    names = simam.bench.names()
    if not argv or argv[0] not in names:
        print(f"usage: python -m simam.bench {{{','.join(names)}}} [options]", file=sys.stderr)
        return 2
    return importlib.import_module(f"simam.bench.{argv[0]}").main(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
