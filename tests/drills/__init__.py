"""Operational drills (`make drills`): scenarios against the real local stack, each ending
with a verdict line and its figures, and a summary table at the end (tests/drills/plugin.py)."""
