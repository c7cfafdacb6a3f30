"""SI Pilotage: real-time statistics."""
