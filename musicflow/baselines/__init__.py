"""Baselines the flows are measured against: an independent Bernoulli per cell and genre, and a
conditional VAE and a conditional GAN of similar size trained on the same windows with the same
conditioning."""
