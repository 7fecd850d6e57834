"""Generation: hypothesis strategies for cases and the hypothesis profiles of the suite."""
