"""Evaluating translations: FID and KID, cycle consistency, paired errors."""
