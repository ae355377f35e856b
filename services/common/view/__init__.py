"""The Redis view: key names and what owns the view as a whole.

- `keys`: every key name of the layout (docs/redis.md);
- `client`: the one function that builds a Redis client from Settings
  (tests/unit/test_structure.py holds every other module to it);
- `layout`: the layout and methodology versions the view is written in, checked at start;
- `wipe`: bulk deletion for the rebuilds.
"""
