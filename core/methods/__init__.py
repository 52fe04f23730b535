"""One module per published drag method, each a loop over the shared core primitives."""
