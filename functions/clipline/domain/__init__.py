"""Pure domain: jobs, errors, ports and use cases. Imports nothing of ours and does no I/O."""
