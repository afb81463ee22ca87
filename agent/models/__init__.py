"""Neural network modules of the agents."""
