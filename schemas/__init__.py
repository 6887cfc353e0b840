"""Table models and input/output models: the data shapes every other layer shares."""
