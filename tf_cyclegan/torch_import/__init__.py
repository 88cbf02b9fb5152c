"""Importing PyTorch CycleGAN and CUT checkpoints (the reference implementation's and the official
CUT code's `.pth` files) without torch."""
