"""Comparing two models over seeds: mean ± std and Welch's t-test, the verdict every comparison of the notebooks
prints ("A above B, p = 0.003" or "not significant, p = 0.15").

Welch's test (unequal variances) via scipy, which installs with scikit-learn, a dependency of flexlib.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

ALPHA = 0.05


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value; NaN for none), NaNs left out."""
    values = [float(v) for v in values if not math.isnan(float(v))]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def welch_p(a, b) -> float:
    """Two-sided p-value of Welch's t-test between samples `a` and `b` (NaN with fewer than 2 values in either, or
    when both have no spread: then the test is undefined)."""
    import warnings

    from scipy import stats
    a, b = [float(v) for v in a], [float(v) for v in b]
    if len(a) < 2 or len(b) < 2 or (statistics.pstdev(a) == 0 and statistics.pstdev(b) == 0):
        return math.nan
    with warnings.catch_warnings():      # scipy warns when values are nearly identical; the p-value is still its own
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def paired_p(a, b) -> float:
    """Two-sided p-value of the paired t-test between `a` and `b`, matched by position (e.g. the same images fitted
    by two networks); NaN with fewer than 2 pairs or no spread in the differences."""
    from scipy import stats
    a, b = [float(v) for v in a], [float(v) for v in b]
    if len(a) != len(b):
        raise ValueError(f"paired_p: {len(a)} and {len(b)} values; a paired test needs them matched one to one")
    differences = [x - y for x, y in zip(a, b)]
    if len(a) < 2 or statistics.pstdev(differences) == 0:
        return math.nan
    return float(stats.ttest_rel(a, b).pvalue)


@dataclass(frozen=True)
class Comparison:
    """`a` against `b` over seeds: means, stds, counts, the difference of means and Welch's p."""
    a: str
    b: str
    mean_a: float
    std_a: float
    n_a: int
    mean_b: float
    std_b: float
    n_b: int
    p: float

    @property
    def difference(self) -> float:
        return self.mean_a - self.mean_b

    @property
    def significant(self) -> bool:
        return not math.isnan(self.p) and self.p < ALPHA

    @property
    def verdict(self) -> str:
        """"a > b" / "a < b" when p < 0.05, else "not significant" (also when p cannot be computed)."""
        if not self.significant:
            return "not significant"
        return f"{self.a} > {self.b}" if self.difference > 0 else f"{self.a} < {self.b}"

    def line(self, unit: str = "%", fmt: str = ".2f") -> str:
        p = "p n/a (fewer than 2 seeds, or no spread in either)" if math.isnan(self.p) else f"Welch p = {self.p:.3g}"
        f = fmt
        return (f"{self.a} {self.mean_a:{f}} ± {self.std_a:{f}}{unit} (n = {self.n_a}) vs {self.b} {self.mean_b:{f}} ± "
                f"{self.std_b:{f}}{unit} (n = {self.n_b}): difference {self.difference:+{f}}, {p}: {self.verdict}")

    @classmethod
    def of(cls, record) -> "Comparison":
        """Back from a line of a `compare_to` table (a dict, a pandas row or an itertuples() tuple)."""
        get = record.get if isinstance(record, dict) else (lambda k: getattr(record, k))
        return cls(get("a"), get("b"), get("mean_a"), get("std_a"), get("n_a"), get("mean_b"), get("std_b"),
                   get("n_b"), get("p_welch"))

    def as_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "mean_a": self.mean_a, "std_a": self.std_a, "n_a": self.n_a,
                "mean_b": self.mean_b, "std_b": self.std_b, "n_b": self.n_b, "difference": self.difference,
                "p_welch": self.p, "verdict": self.verdict}


def compare(a_name: str, a, b_name: str, b) -> Comparison:
    """Compare the per-seed values `a` and `b` (e.g. accuracies)."""
    a, b = [float(v) for v in a], [float(v) for v in b]
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    return Comparison(a_name, b_name, ma, sa, len(a), mb, sb, len(b), welch_p(a, b))


def summarize(frame, by: list[str], value: str):
    """Mean, std and count of `value` per group of `by` (a pandas DataFrame, groups in order of appearance)."""
    import pandas as pd
    lines = []
    for key, part in frame.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        mean, std = mean_std(part[value])
        lines.append({**dict(zip(by, key)), f"{value}_mean": mean, f"{value}_std": std, "n": len(part)})
    return pd.DataFrame(lines)


def compare_to(frame, value: str, reference: str, model: str = "model", within: str | None = None):
    """`reference` against every other `model` of `frame` (one line per seed), within each group of `within`
    (e.g. a task): a DataFrame of Comparison.as_dict() lines, with the group."""
    import pandas as pd
    groups = frame.groupby(within, sort=False) if within else [(None, frame)]
    lines = []
    for key, part in groups:
        ref = part.loc[part[model] == reference, value]
        for other, rest in part[part[model] != reference].groupby(model, sort=False):
            line = compare(reference, ref, other, rest[value]).as_dict()
            lines.append(({within: key} if within else {}) | line)
    return pd.DataFrame(lines)


def compare_pairs(frame, value: str, model: str = "model", within: str | None = None):
    """Every pair of `model`s of `frame` (one line per seed), the earlier (in order of appearance) as `a`, within each
    group of `within`: a DataFrame of Comparison.as_dict() lines, with the group."""
    import pandas as pd
    groups = frame.groupby(within, sort=False) if within else [(None, frame)]
    lines = []
    for key, part in groups:
        names = list(dict.fromkeys(part[model]))
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                line = compare(a, part.loc[part[model] == a, value], b, part.loc[part[model] == b, value]).as_dict()
                lines.append(({within: key} if within else {}) | line)
    return pd.DataFrame(lines)
