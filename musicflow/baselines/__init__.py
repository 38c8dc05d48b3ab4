"""Baselines the flows are measured against: an independent Bernoulli per cell and genre, and a
conditional VAE of similar size trained on the same windows with the same conditioning."""
