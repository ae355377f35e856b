"""Stand-ins for what tests cannot run for real: the Instagram Graph API, a flaky network."""
