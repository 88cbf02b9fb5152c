"""Importing PyTorch CycleGAN checkpoints (the reference implementation's `.pth` files) without torch."""
