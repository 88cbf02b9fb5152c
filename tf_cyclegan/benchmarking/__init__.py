"""What `tf-cyclegan bench` needs: the timed training step and its floating-point operation count."""
