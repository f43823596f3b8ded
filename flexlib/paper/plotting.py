"""One look for every figure of the notebooks: each model (or run) its own colour and marker, stable across the
panels of a figure, so that no two series share a colour even beyond matplotlib's 10-colour cycle."""
from __future__ import annotations

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*", "h", "p")


def palette(count: int) -> list:
    """`count` distinct colours: tab10 up to 10, then tab20's pairs (dark, then light) up to 20, then hsv."""
    import matplotlib
    if count <= 10:
        return [matplotlib.colormaps["tab10"](i) for i in range(count)]
    if count <= 20:
        tab20 = matplotlib.colormaps["tab20"]
        return [tab20(2 * i) for i in range(10)][:count] + [tab20(2 * i + 1) for i in range(10)][:count - 10]
    return [matplotlib.colormaps["hsv"](i / count) for i in range(count)]


def styles(names) -> dict[str, dict]:
    """{name: {"color": ..., "marker": ...}} for the distinct `names` in order of first appearance: no two share a
    colour (up to 20, then hsv), markers cycle through 12 shapes; pass as `ax.plot(..., **styles[name])`."""
    names = list(dict.fromkeys(names))
    colours = palette(len(names))
    return {n: {"color": c, "marker": MARKERS[i % len(MARKERS)]} for i, (n, c) in enumerate(zip(names, colours))}
