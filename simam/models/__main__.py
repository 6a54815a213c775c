"""``python -m simam.models [--num-classes N]``:
a Markdown table of every network's parameter count."""

from __future__ import annotations

import argparse
import sys

from simam.attention import list_attentions
from simam.models import count_parameters, create_model, list_models


def parameter_table(num_classes: int = 10) -> str:
    """Parameters in millions (3 decimals) of every model with every attention module,
    as Markdown."""
    attentions = list_attentions()
    lines = [
        f"Parameters (millions) of each network for {num_classes} classes, by attention module; "
        "printed by "
        f"`python -m simam.models{'' if num_classes == 10 else f' --num-classes {num_classes}'}`.",
        "",
        "| model | " + " | ".join(attentions) + " |",
        "| --- | " + " | ".join("---:" for _ in attentions) + " |",
    ]
    for name in list_models():
        counts = [
            count_parameters(create_model(name, attention, num_classes)) for attention in attentions
        ]
        lines.append(f"| {name} | " + " | ".join(f"{count / 1e6:.3f}" for count in counts) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simam.models", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--num-classes", type=int, default=10, help="outputs of the classifier (default 10)"
    )
    args = parser.parse_args(argv)
    print(parameter_table(args.num_classes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
