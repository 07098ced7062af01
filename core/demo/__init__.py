"""The synthetic demo: procedural part images, and the plant that produces them."""
