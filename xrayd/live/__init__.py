"""Live traffic: the access-log parser and tailer, rolling aggregates, the traffic ledger."""
