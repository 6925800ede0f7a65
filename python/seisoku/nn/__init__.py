"""Neural-network layers, losses and regularizers over NumPy (CPU) and CuPy (GPU) arrays."""
