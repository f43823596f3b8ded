"""The verdicts of the notebooks' comparisons (Welch's t-test) and the per-model styles of their figures."""
import math

import numpy as np

from flexlib.paper import stats
from flexlib.paper.plotting import styles


def test_welch_p_matches_the_closed_form_and_the_verdict_reads_it():
    a, b = [90.1, 91.3, 90.7], [88.0, 88.9, 87.5]
    ma, mb, va, vb = np.mean(a), np.mean(b), np.var(a, ddof=1), np.var(b, ddof=1)
    t = (ma - mb) / math.sqrt(va / 3 + vb / 3)
    df = (va / 3 + vb / 3) ** 2 / ((va / 3) ** 2 / 2 + (vb / 3) ** 2 / 2)
    from scipy import stats as sps
    assert math.isclose(stats.welch_p(a, b), 2 * sps.t.sf(abs(t), df), rel_tol=1e-9)
    c = stats.compare("A", a, "B", b)
    assert c.significant and c.verdict == "A > B" and math.isclose(c.difference, ma - mb)
    close = stats.compare("A", [78.4, 73.4, 84.5], "B", [82.6, 84.6, 89.7])
    assert not close.significant and close.verdict == "not significant" and "not significant" in close.line()
    assert math.isnan(stats.compare("A", [1.0], "B", [2.0, 3.0]).p)


def test_every_model_gets_its_own_colour_and_marker():
    names = [f"njet{i}" for i in range(1, 10)] + ["siren", "magnet-s", "magnet"]
    style = styles(names)
    colours = [tuple(s["color"]) for s in style.values()]
    assert len(set(colours)) == len(names) == 12
    assert len({s["marker"] for s in style.values()}) == 12
    assert list(styles(["b", "a", "b"])) == ["b", "a"]


def test_a_comparison_survives_a_table_line():
    import pandas as pd
    frame = pd.DataFrame({"model": ["A"] * 3 + ["B"] * 3, "acc": [90.1, 91.3, 90.7, 88.0, 88.9, 87.5]})
    table = stats.compare_to(frame, "acc", "A")
    line = next(table.itertuples())
    again = stats.Comparison.of(line)
    assert again == stats.compare("A", [90.1, 91.3, 90.7], "B", [88.0, 88.9, 87.5])
    assert stats.Comparison.of(table.iloc[0].to_dict()).line() == again.line() and line.verdict == "A > B"


def test_every_pair_is_compared_once_within_its_group():
    import pandas as pd
    frame = pd.DataFrame({"task": ["x"] * 6 + ["y"] * 4, "model": list("AABBCC") + list("AABB"),
                          "acc": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1.0, 1.5, 1.0, 1.2]})
    pairs = stats.compare_pairs(frame, "acc", within="task")
    assert [(r.task, r.a, r.b) for r in pairs.itertuples()] == [("x", "A", "B"), ("x", "A", "C"), ("x", "B", "C"),
                                                              ("y", "A", "B")]
    assert pairs.iloc[0]["difference"] == -2.0
