"""Times the synthetic bank generator at 10k and 100k customers and writes bench/results/bankgen.md.

Run: ``uv run --frozen python bench/bankgen_bench.py``. Each size is generated once into a
temporary directory. The floor is the cost of drawing and writing the same number of parquet rows
as plain random columns in the same run, so the ratio is comparable across machines.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from qianmian_bankgen import generate

SIZES = (10_000, 100_000)
SEED = 7
AS_OF = date(2026, 11, 1)
BUDGET_S = 60.0  # 100k customers must generate in under a minute on a 2-core machine
RESULTS = Path(__file__).parent / "results" / "bankgen.md"


def _floor(rows: int, out: Path) -> float:
    """Seconds to draw and write ``rows`` rows of five random columns: the I/O floor."""
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    table = pa.table({f"c{k}": rng.integers(0, 1 << 40, rows) for k in range(5)})
    pq.write_table(table, out / "floor.parquet")
    return time.perf_counter() - started


def main() -> None:
    lines = [
        "# Synthetic bank generator benchmark",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU, Python {platform.python_version()}; "
        f"seed {SEED}, as-of {AS_OF.isoformat()}. Produced by `bench/bankgen_bench.py`.",
        "",
        "Floor: drawing and writing the same total number of parquet rows as five random int64 columns.",
        "",
        "| customers | seconds | customers/s | parquet rows | floor s | × floor | within 60 s |",
        "|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    row_tables: list[str] = []
    for customers in SIZES:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            started = time.perf_counter()
            manifest = generate(customers, SEED, AS_OF, out / "bank")
            seconds = time.perf_counter() - started
            parquet_rows = sum(v for k, v in manifest.rows.items() if k.endswith(".parquet"))
            floor = _floor(parquet_rows, out)
        ok = "yes" if seconds < BUDGET_S else "**no**"
        lines.append(
            f"| {customers:,} | {seconds:.2f} | {customers / seconds:,.0f} | {parquet_rows:,} | "
            f"{floor:.2f} | {seconds / floor:.1f} | {ok} |"
        )
        row_tables.append(f"\n### Rows per file, {customers:,} customers\n\n| file | rows |\n|---|---:|")
        row_tables.extend(f"| `{name}` | {count:,} |" for name, count in manifest.rows.items())
        rate = customers / seconds
        print(f"{customers:>7} customers: {seconds:6.2f} s ({rate:,.0f}/s), floor {floor:.2f} s")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join([*lines, *row_tables]) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
