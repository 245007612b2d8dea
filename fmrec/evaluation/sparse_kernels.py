"""EvaluateModel's numba loops (sparse_products.py calls them where numba is installed)."""

from __future__ import annotations

import numba
import numpy as np

# The biases-only baseline's L-BFGS fit takes ~80 products with the train channel (64M entries at the
# ml-100k shape). Through scipy each needed a float64 copy of the values and a transposed copy of the matrix
# (1.3 GB of fresh memory, which this machine pays ~3 s a GB to page in), and ran on one core. Here:
# - `matvec`: each row's sum runs over its entries in order from 0.0, as scipy's csr_matvec does; rows are
#   split between threads (a row is summed by one thread, so the bits do not depend on the thread count);
# - `rmatvec`: out[j] gathers x_ij * r_i over the rows i in increasing order from 0.0, which is the order of
#   scipy's csr_matvec on X.T.tocsr() (the transpose keeps each column's entries in row order).
# No fastmath: the products are rounded as numpy rounds them (a multiply, then an add).

# Unsigned positions: numba wraps negative indices, and the check on every entry made a product 1.5x slower.
U = np.uint64


@numba.njit(cache=True, nogil=True, parallel=True)
def matvec_into(indptr, indices, data, v, out):  # pragma: no cover - compiled
    for i in numba.prange(out.size):
        acc = 0.0
        for p in range(U(indptr[i]), U(indptr[i + 1])):
            acc += np.float64(data[p]) * v[U(indices[p])]
        out[i] = acc


@numba.njit(cache=True, nogil=True)
def rmatvec_into(indptr, indices, data, r, out):  # pragma: no cover - compiled
    for i in range(indptr.size - 1):
        ri = r[i]
        for p in range(U(indptr[i]), U(indptr[i + 1])):
            out[U(indices[p])] += np.float64(data[p]) * ri


@numba.njit(cache=True, nogil=True)
def row_hits_into(indptr, indices, position, out):  # pragma: no cover - compiled
    for i in range(out.size):
        for p in range(U(indptr[i]), U(indptr[i + 1])):
            at = position[U(indices[p])]
            if at >= 0:
                out[i] = at
