"""The training bench: nets, datasets, training runs, the batched engine, compare."""
