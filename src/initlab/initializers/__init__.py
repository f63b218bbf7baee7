"""Initializers: fans, gains, schemes, the registry, activation discovery, init_model, build."""
