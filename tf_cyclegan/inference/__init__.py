"""Translating with trained generators, loading every kind of saved model, and exporting."""
