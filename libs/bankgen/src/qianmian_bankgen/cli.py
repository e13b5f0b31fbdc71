"""Command line: ``qianmian-bankgen generate --customers N --seed S --as-of YYYY-MM-DD --out DIR``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from qianmian_bankgen.generator import generate


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; prints a one-line summary with row counts and seconds."""
    args = _parser().parse_args(argv)
    if args.customers < 1:
        print("error: --customers must be at least 1", file=sys.stderr)
        return 2
    manifest = generate(args.customers, args.seed, args.as_of, args.out)
    counts = " ".join(f"{name}={count}" for name, count in manifest.rows.items())
    print(f"generated {args.out} in {manifest.seconds:.2f}s: {counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
