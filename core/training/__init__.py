"""Training: config, data and augmentation, the loop, metrics, registering the result."""
