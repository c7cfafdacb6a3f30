"""Patient web accounts: activation, password + one-time code, lockout (used by the portals and TD1.5)."""
