"""Callbacks of a training run: backups, `.keras` checkpoints, sample grids, monitoring."""
