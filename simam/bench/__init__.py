"""Benchmarks that print ratios measured side by side in one run: ``python -m simam.bench NAME``.

Each benchmark is a module ``simam.bench.NAME`` with a ``main(argv)`` function.
"""
