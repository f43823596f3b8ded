"""Support for the paper's notebooks: the paper's numbers (results.py, sizes.py, protocol.py), the experiments
that are not classification runs (Fig. 4 kernel fitting, Table 5 Kodak fitting, compute timings), looking inside
trained models (analysis.py) and saving results with their provenance (reporting.py).

Nothing here is imported by `import flexlib`; the notebooks import it explicitly."""
