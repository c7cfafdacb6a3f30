"""The PS portal keeps no rows of its own: TD0.9 links live in `dmp.records` (IssuedContextLink)."""
