"""Options of ``recommender eval-ranker`` and ``recommender train-ranker`` (no heavy imports: the CLI
builds its parser on every call)."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path


def add_arguments(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The two sub-commands and their options."""
    for name, text in (
        (
            "eval-ranker",
            "next product added: the LightGBM ranker against CF, popularity and the oracle "
            "(reports/ranker.md)",
        ),
        ("train-ranker", "train the LightGBM ranker on the newest months of a panel and register it"),
    ):
        p = commands.add_parser(name, help=text)
        p.add_argument("--customers", type=int, default=100_000, help="synthetic panel size (default 100000)")
        p.add_argument("--months", type=int, default=12, help="synthetic panel snapshots (default 12)")
        p.add_argument("--seed", type=int, default=7, help="generator, sampling and model seed (default 7)")
        p.add_argument(
            "--until",
            type=date.fromisoformat,
            default=None,
            help="synthetic panel: its last snapshot is the last 28th on or before this date "
            "(default: the generator's fixed calendar); serving wants a recent one",
        )
        p.add_argument("--panel", type=Path, default=None, help="a `qianmian-bankgen snapshots` directory")
        p.add_argument(
            "--bank",
            type=Path,
            default=None,
            help="a generated bank directory (`qianmian-bankgen`, what profile serves): its own holdings "
            "history, --months snapshots ending at --until (default its as-of)",
        )
        p.add_argument(
            "--santander",
            type=Path,
            default=None,
            help="a Santander-layout CSV (the Kaggle train_ver2.csv or one in its layout); "
            "products = its ind_*_ult1 columns",
        )
        p.add_argument(
            "--max-customers",
            type=int,
            default=None,
            help="a seeded sample of this many customers of the file",
        )
        p.add_argument(
            "--train-months", type=int, default=6, help="label months the ranker learns from (default 6)"
        )
        p.add_argument(
            "--workdir",
            type=Path,
            default=None,
            help="keep the feature sources and Feast repo here; train-ranker also loads the newest "
            "snapshot into its online store, for RECOMMENDER_RANKER_STORE=<workdir>/repo",
        )
        p.add_argument("--approve", action="store_true", help="register as approved (default: candidate)")
        if name == "eval-ranker":
            p.add_argument(
                "--out", type=Path, default=Path("reports"), help="report folder (default reports/)"
            )
            p.add_argument(
                "--register", action="store_true", help="also register the evaluated ranker with its metrics"
            )
