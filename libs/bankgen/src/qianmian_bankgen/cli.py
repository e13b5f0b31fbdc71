"""Command line.

``qianmian-bankgen generate --customers N --seed S --as-of YYYY-MM-DD --out DIR`` writes the bank of
``docs/data-contract.md``; ``qianmian-bankgen snapshots --customers N --months M --seed S --out DIR``
writes monthly holding snapshots in the Santander layout with their adoption oracle.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from qianmian_bankgen.dynamics import ARRIVAL_RATE, DEFAULT_START, write_panel
from qianmian_bankgen.generator import generate


def _month(text: str) -> date:
    """``YYYY-MM`` or ``YYYY-MM-DD`` as the first day of that month."""
    parts = text.split("-")
    if len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError(f"expected YYYY-MM, got {text!r}")
    try:
        return date(int(parts[0]), int(parts[1]), 1)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM, got {text!r}") from exc


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qianmian-bankgen", description="Generate the synthetic bank.")
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="write every file of docs/data-contract.md")
    gen.add_argument("--customers", type=int, default=10_000, help="number of customers (default 10000)")
    gen.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    gen.add_argument(
        "--as-of", type=date.fromisoformat, default=date(2026, 11, 1), help="as-of date, YYYY-MM-DD"
    )
    gen.add_argument("--out", type=Path, default=Path("data/bank"), help="output directory")

    snap = commands.add_parser(
        "snapshots", help="monthly holding snapshots (Santander layout) with the adoption oracle"
    )
    snap.add_argument("--customers", type=int, default=10_000, help="initial customers (default 10000)")
    snap.add_argument("--months", type=int, default=12, help="number of monthly snapshots (default 12)")
    snap.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    snap.add_argument(
        "--start",
        type=_month,
        default=DEFAULT_START,
        help=f"month of the first snapshot, YYYY-MM (default {DEFAULT_START:%Y-%m})",
    )
    snap.add_argument(
        "--arrival-rate",
        type=float,
        default=ARRIVAL_RATE,
        help=f"new customers a month as a share of --customers (default {ARRIVAL_RATE})",
    )
    snap.add_argument("--parquet", action="store_true", help="also write snapshots.parquet")
    snap.add_argument("--out", type=Path, default=Path("data/snapshots"), help="output directory")
    return parser


def _snapshots(args: argparse.Namespace) -> int:
    if args.months < 1:
        print("error: --months must be at least 1", file=sys.stderr)
        return 2
    if not 0 <= args.arrival_rate < 1:
        print("error: --arrival-rate must be in [0, 1)", file=sys.stderr)
        return 2
    manifest = write_panel(
        args.customers, args.months, args.seed, args.out, args.start, args.arrival_rate, parquet=args.parquet
    )
    rates = [float(m["adder_rate"]) for m in manifest.monthly if "adder_rate" in m]
    adoption = f"{min(rates):.2%}-{max(rates):.2%}" if rates else "n/a"
    counts = " ".join(f"{name}={count}" for name, count in manifest.rows.items())
    print(
        f"wrote {args.out} in {manifest.seconds:.2f}s: {counts}; "
        f"customers adding a product per month {adoption}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; prints a one-line summary with row counts and seconds."""
    args = _parser().parse_args(argv)
    if args.customers < 1:
        print("error: --customers must be at least 1", file=sys.stderr)
        return 2
    if args.command == "snapshots":
        return _snapshots(args)
    manifest = generate(args.customers, args.seed, args.as_of, args.out)
    counts = " ".join(f"{name}={count}" for name, count in manifest.rows.items())
    print(f"generated {args.out} in {manifest.seconds:.2f}s: {counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
