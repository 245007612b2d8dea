"""The stage drivers: each runs one stage over the library's concepts; no other fmrec module imports them."""
