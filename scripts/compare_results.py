"""Compare the results a run just wrote into results/<notebook>/<profile>/ with the committed ones, table by table.

    python scripts/compare_results.py [--check] [--against REV] [--profile quick] [NOTEBOOK ...]

Every CSV table of each folder is compared cell by cell with the file of the same name at REV (default HEAD): numbers
must be equal to the last digit, text identical. Columns that time this machine (`seconds`, `*_s`, `*_ms`, `ms_*`), rows
whose `measure` is a time (a t-test of ms per iteration) and the `compute` notebook (every number of it is a timing)
are not compared. Prints one line per notebook; with --check,
exits 1 when a number differs or a table is missing (0 otherwise, and always 0 without --check).
"""
from __future__ import annotations

import argparse
import csv
import io
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMED_NOTEBOOKS = {"compute": "timings of this machine, not compared"}


def timing_column(name: str) -> bool:
    return name == "seconds" or name.endswith(("_s", "_ms")) or name.startswith("ms_")   # ms_per_iteration_mean


def timing_row(row: dict) -> bool:
    """A row of a comparison table whose `measure` is a time (its means, differences and p-values time this machine)."""
    measure = (row.get("measure") or "").lower()
    return measure.startswith("ms ") or "second" in measure or "time" in measure


def committed(path: Path, rev: str) -> str | None:
    relative = path.relative_to(ROOT).as_posix()
    result = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{relative}"], capture_output=True, text=True)
    return result.stdout if result.returncode == 0 else None


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def compare_table(ours: str, theirs: str) -> tuple[int, int, list[str]]:
    """(cells compared, cells that differ, a description of the differences by column)."""
    rows_a, rows_b = list(csv.DictReader(io.StringIO(ours))), list(csv.DictReader(io.StringIO(theirs)))
    if len(rows_a) != len(rows_b) or (rows_a and list(rows_a[0]) != list(rows_b[0])):
        return 1, 1, [f"shape {len(rows_a)} rows x {len(rows_a[0]) if rows_a else 0} columns, committed "
                      f"{len(rows_b)} x {len(rows_b[0]) if rows_b else 0}"]
    compared, differing, worst = 0, 0, {}
    for a, b in zip(rows_a, rows_b):
        if timing_row(a) and timing_row(b):
            continue
        for column in a:
            if timing_column(column):
                continue
            compared += 1
            x, y = _number(a[column]), _number(b[column])
            same = a[column] == b[column] or (x is not None and y is not None and (x == y or math.isnan(x) and
                                                                                   math.isnan(y)))
            if not same:
                differing += 1
                delta = abs(x - y) if x is not None and y is not None else math.inf
                worst[column] = max(worst.get(column, 0.0), delta)
    notes = [f"{column} (largest |Δ| {delta:.4g})" if math.isfinite(delta) else f"{column} (text)"
             for column, delta in sorted(worst.items(), key=lambda kv: -kv[1])]
    return compared, differing, notes


def compare_folder(folder: Path, rev: str) -> tuple[bool, str]:
    """(reproduced, one line saying so or what differs)."""
    notebook = folder.parent.name
    if notebook in TIMED_NOTEBOOKS:
        return True, TIMED_NOTEBOOKS[notebook]
    tables = sorted(folder.glob("*.csv"))
    if not tables:
        return False, "no tables written"
    compared = differing = 0
    problems = []
    for table in tables:
        theirs = committed(table, rev)
        if theirs is None:
            problems.append(f"{table.name}: not committed at {rev}")
            continue
        n, d, notes = compare_table(table.read_text(), theirs)
        compared, differing = compared + n, differing + d
        if d:
            problems.append(f"{table.name}: {d} of {n} differ: {', '.join(notes[:4])}")
    if not problems:
        return True, f"identical ({len(tables)} tables, {compared} values)"
    return False, f"{differing} of {compared} values differ; " + "; ".join(problems)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebook names (default: every one with results)")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--against", default="HEAD", metavar="REV", help="the commit to compare with")
    parser.add_argument("--check", action="store_true", help="exit 1 when any result differs")
    args = parser.parse_args(argv)
    names = [n for n in args.notebooks if n != "all"] or sorted(p.parent.name for p in
                                                                  (ROOT / "results").glob(f"*/{args.profile}"))
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.against], capture_output=True,
                            text=True).stdout.strip() or args.against
    print(f"== this run beside the committed results ({args.against} = {commit}), {args.profile} profile:")
    reproduced = True
    for name in names:
        folder = ROOT / "results" / name / args.profile
        ok, line = compare_folder(folder, args.against) if folder.is_dir() else (False, "no results folder")
        reproduced &= ok
        print(f"   {name}: {line}")
    print("== all reproduced exactly" if reproduced else "== not all reproduced (see above)")
    return 1 if args.check and not reproduced else 0


if __name__ == "__main__":
    sys.exit(main())
