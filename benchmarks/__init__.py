"""Benchmarks: scripts that measure and print their figures (README "Benchmarks").

A regular package on purpose: opacus 1.6 installs a top-level `benchmarks` package into
site-packages, which would win over this folder as a namespace package and break
`from benchmarks.datasets import ...` in the tests and scripts.
"""
