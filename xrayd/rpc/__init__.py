"""The JSON-RPC layer of xrayd: framing, dispatch, and the Unix socket server, kept apart."""
