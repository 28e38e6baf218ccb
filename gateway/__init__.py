"""The unprivileged REST gateway: 35 endpoints, each one RPC call to xrayd."""
