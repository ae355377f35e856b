"""The Redis view: its one owner.

- `keys`: every key name of the layout (docs/redis.md);
- `codecs`: one typed codec per stored value (readers get dataclasses, never dicts);
- `scripts`: every Lua script, each with its KEYS, ARGV and reply, and a typed wrapper;
- `client`: the one function that builds a Redis client from Settings;
- `layout`: the layout and methodology versions the view is written in, checked at start;
- `wipe`: bulk deletion for the rebuilds.

Stores (the scorer's, the publisher's, the API's readers) build on these; no other module
imports key names, registers a script or builds a client (tests/unit/test_structure.py).
"""
