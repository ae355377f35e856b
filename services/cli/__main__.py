"""`python -m services.cli …` (how `observatoire run` starts its services)."""

from services.cli import main

main()
