"""Xray's config.json and the running Xray: users, REALITY links, backups, restarts.

`stack.XrayStack` builds the pieces once per daemon; the `users.*`, `xray.*` and `backups.*`
RPC methods share it, so one lock serializes every write of config.json.
"""
