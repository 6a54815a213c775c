"""``simam-bench NAME [options]`` (or ``python -m simam.bench NAME [options]``): run the benchmark
``simam.bench.NAME``."""

import importlib
import pkgutil
import sys

import simam.bench


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    names = sorted(
        m.name for m in pkgutil.iter_modules(simam.bench.__path__) if not m.name.startswith("_")
    )
    if not argv or argv[0] not in names:
        print(f"usage: python -m simam.bench {{{','.join(names)}}} [options]", file=sys.stderr)
        return 2
    return importlib.import_module(f"simam.bench.{argv[0]}").main(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
