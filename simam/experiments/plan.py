"""The runs of a grid: every combination of data sets, networks, attention modules, lambdas,
recipes and seeds, as :class:`RunSpec` objects, and the paper's Figure 4 grid."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from simam.attention import PLACES, attention_kind, list_attentions, resolve_attention
from simam.config import RECIPES, Config, ConfigError, config_from_args, option_name
from simam.data import DATASETS
from simam.models import list_models
from simam.paper_results import (
    FIGURE4_DATASET,
    FIGURE4_LAMBDAS,
    FIGURE4_MODEL,
    PAPER_LAMBDA,
)
from simam.runs import run_id

DEFAULT_ATTENTIONS = ("none", "se", "cbam", "eca", "gc", "simam")
# The trainer options that the grid sets itself, per run.
GRID_OPTIONS = {
    "out",
    "resume",
    "recipe",
    "model",
    "attention",
    "dataset",
    "seed",
    "lambda_",
    "place",
}


class GridError(ValueError):
    """A grid, an option or a results folder that the runner cannot use."""


def check_extra_args(extra_args: Sequence[str]) -> dict[str, Any]:
    """Trainer options for every run: they must parse into a usable configuration, and leave the
    grid's own options to the grid. Returns the options given, by Config field."""
    try:
        _, given = config_from_args(extra_args)
    except ConfigError as error:
        raise GridError(f"trainer options: {error}") from None
    owned = sorted(set(given) & GRID_OPTIONS)
    if owned:
        raise GridError(
            f"trainer options may not set {', '.join(map(option_name, owned))}: "
            "the grid sets them (--models, --attentions, --datasets, --seeds, --lambdas, "
            "--recipe, --out)"
        )
    return given


@dataclass(frozen=True)
class RunSpec:
    """One training run of a grid. ``lambda_`` None: the trainer's default (the paper's 1e-4);
    ``place`` None: the paper's place for the attention (see :data:`simam.attention.PLACES`).
    ``options``: further trainer options over the recipe, from a study's plan, named by
    ``variant`` in the run id."""

    dataset: str
    model: str
    attention: str
    recipe: str
    seed: int
    lambda_: float | None = None
    place: str | None = None
    variant: str | None = None
    options: tuple[str, ...] = ()

    @property
    def run_id(self) -> str:
        return run_id(
            self.dataset,
            self.model,
            self.attention,
            self.recipe,
            self.seed,
            self.lambda_,
            self.place,
            self.variant,
        )

    def train_args(self) -> list[str]:
        """The trainer options that make this run (without ``--out``)."""
        args = [
            "--dataset",
            self.dataset,
            "--model",
            self.model,
            "--attention",
            self.attention,
            "--recipe",
            self.recipe,
            "--seed",
            str(self.seed),
        ]
        args += [] if self.lambda_ is None else ["--lambda", repr(self.lambda_)]
        args += [] if self.place is None else ["--place", self.place]
        return [*args, *self.options]

    def config(self, extra_args: Sequence[str] = (), processes: int = 1) -> Config:
        """The :class:`simam.config.Config` this run trains with, ``extra_args`` included, checked
        for a run on ``processes`` processes (GPUs): what the trainer makes of the same options."""
        try:
            return config_from_args([*self.train_args(), *extra_args], processes)[0]
        except ConfigError as error:
            raise GridError(f"{self.run_id}: {error}") from None


def plan(
    models: Iterable[str],
    attentions: Iterable[str],
    datasets: Iterable[str],
    seeds: int | Iterable[int],
    recipes: Iterable[str] = ("paper",),
    lambdas: Iterable[float] | None = None,
    place: str | None = None,
) -> list[RunSpec]:
    """Every combination, as run specs: datasets, then models, attentions, lambdas, recipes, seeds.

    ``seeds``: a count (seeds 0..n-1) or the seeds themselves. ``lambdas`` apply to the SimAM
    attentions only; the other attentions get one run per seed. ``place``: where every block puts
    the attention (:data:`simam.attention.PLACES`), None for the paper's place; a run at its
    module's paper place keeps the plain run id. Unknown names raise :class:`GridError`.
    """
    if place is not None and place not in PLACES:
        raise GridError(f"unknown place {place!r}; known: {', '.join(PLACES)}")
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    axes = {
        "model": (list(models), list_models()),
        "attention": (list(attentions), list_attentions()),
        "dataset": (list(datasets), list(DATASETS)),
        "recipe": (list(recipes), list(RECIPES)),
    }
    for axis, (asked, known) in axes.items():
        unknown = [name for name in asked if name not in known]
        if unknown or not asked:
            raise GridError(
                f"unknown {axis} {unknown[0]!r}; known: {', '.join(known)}"
                if unknown
                else f"no {axis} given"
            )
    if not seeds or any(seed < 0 for seed in seeds) or len(set(seeds)) < len(seeds):
        raise GridError(f"seeds must be distinct non-negative integers, got {seeds}")
    lambdas = None if lambdas is None else list(lambdas)
    if lambdas is not None and (
        not lambdas or any(not (value >= 0 and math.isfinite(value)) for value in lambdas)
    ):
        raise GridError(f"lambdas must be non-negative numbers, got {lambdas}")
    specs = []
    for dataset in axes["dataset"][0]:
        for model in axes["model"][0]:
            for attention in axes["attention"][0]:
                for lambda_ in _lambdas_of(attention, lambdas):
                    for recipe in axes["recipe"][0]:
                        specs += [
                            RunSpec(
                                dataset,
                                model,
                                attention,
                                recipe,
                                seed,
                                lambda_,
                                _place_of(attention, place),
                            )
                            for seed in seeds
                        ]
    return specs


def _place_of(attention: str, place: str | None) -> str | None:
    """The place a run names: None where it is the paper's place for ``attention``
    (or for no attention)."""
    if place is None or attention == "none" or place == resolve_attention(attention).place:
        return None
    return place


def _lambdas_of(attention: str, lambdas: list[float] | None) -> list[float | None]:
    """The lambdas an attention runs with; the default one as None,
    so that its run id is the plain one."""
    if lambdas is None or "lambda_" not in attention_kind(attention).options:
        return [None]
    return [None if value == PAPER_LAMBDA else value for value in lambdas]


def plan_lambda_ablation(
    seeds: int | Iterable[int] = 5,
    recipe: str = "paper",
    dataset: str = FIGURE4_DATASET,
    lambdas: Iterable[float] = FIGURE4_LAMBDAS,
) -> list[RunSpec]:
    """The paper's Figure 4 grid: ResNet-20 without attention, and with SimAM at each lambda.
    The lambda = 1e-4 runs are the ordinary ResNet-20 + SimAM runs (same run ids)."""
    return plan([FIGURE4_MODEL], ["none", "simam"], [dataset], seeds, [recipe], lambdas)
