"""Benchmarks: `rules` times one training step of every rule against a plain backprop step;
`populations` times P members trained in one batched step against P = 1 (model-steps/s)."""
