"""`python -m services.publisher` runs the publisher (same as `observatoire service publisher`)."""

from services.cli.publisher_service import main

main()
