"""Golden logs: deterministic, realistic event logs for checking the scorer against the oracle."""
