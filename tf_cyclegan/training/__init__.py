"""Training: config, the `train` command's loop around `fit`, schedule, precision, distribution."""
