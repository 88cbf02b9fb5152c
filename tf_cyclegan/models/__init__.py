"""The networks and the CycleGAN update: generators, discriminators, losses, the history pool."""
