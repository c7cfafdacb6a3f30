"""The access decision point: pure policy, habilitation matrix, choke points."""
