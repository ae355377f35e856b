#!/usr/bin/env bash
# Run the whole test suite. pytest's exit code 5 (no test collected) counts as a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-artifacts
.venv/bin/python -m pytest -p no:cacheprovider --junitxml=test-artifacts/junit.xml "$@"
code=$?
if [ "$code" = 5 ]; then
  echo "run_tests: pytest collected no test: failing" >&2
  exit 1
fi
exit "$code"
