"""Sweeps of many runs, plan -> execute -> collect -> analyse, behind sweep.py (docs/design.md)."""
import os

# The repository: where train.py, sweep.py and `python -m analysis` run from.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
