"""Who may use the API: the admin password, named tokens, browser sessions, login limits.

xrayd keeps all of it (the gateway holds no auth state): the password hash and the token
digests in `data_dir/auth.json` (0600), sessions in memory. The gateway forwards each
request's credential digest with the call itself, so a check costs no extra round trip and
a revoked token or a closed session is refused by the very next call.
"""
