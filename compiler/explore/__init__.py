"""`mpc explore`: design-space exploration (docs/explore.md).

space.py reads SPACE.toml (a recipe whose options may be lists: the axes) and expands it into
points; metrics.py names the objectives and reads a build's figures; pareto.py finds the
non-dominated points; search.py proposes points for `--budget` (Optuna); run.py runs the points as
Ray tasks (compiler/parallel.py) into EXPLORE/ and writes the results; html.py draws index.html.

Imports api, report and audit; only the CLI imports it. This module stays import-light.
"""
