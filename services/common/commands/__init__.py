"""Operator commands as a protocol: build one (`protocol.new_command`, with the "answered in
the same second" rule in one place), send it (`protocol.submit_command`, or a `sender.Sender`
from asyncio code), and wait for the publisher's result (`protocol.wait_for_result`).
Every command is signed (`events.build_command`, with the key `keys` says this process holds);
the publisher verifies it (`keys.CommandKeys.refusal`) before executing it.
The CLI and the API use it; the publisher executes commands (services/publisher/commands.py)
and produces with a `Sender` too."""
