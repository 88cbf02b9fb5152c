"""Images in and out, and the unpaired training pipeline (folders or TFDS), and the synthetic dataset."""
