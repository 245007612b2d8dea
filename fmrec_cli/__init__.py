"""The `fmrec` command: the top of the import graph, one module per stage over the library and the twins."""
