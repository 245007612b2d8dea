"""EASE's item-item weights (Steck 2019), fitted in place: one dense catalogue x catalogue matrix."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fmrec.errors import InputError
from fmrec.features.settings import EASE_MAX_ITEMS

if TYPE_CHECKING:
    import scipy.sparse as sp

_BLOCK = 512  # rows per block of the gram product and of the symmetric fill


def ease_weights(train: sp.csr_matrix, l2: float = 500.0) -> np.ndarray:
    """EASE's item-item matrix B: B = I - P diagMat(1 / diag(P)), P = (X'X + l2 I)^-1, zero diagonal; any
    user's scores are their (binary) history row times B, users unseen in training included.

    P comes from LAPACK's Cholesky routines (dpotrf, dpotri) working in place on the gram matrix, so the fit
    holds one n x n float64 matrix (np.linalg.inv held about four) and does a third of inv's arithmetic.
    """
    n_items = train.shape[1]
    if n_items > EASE_MAX_ITEMS:
        raise InputError(f"EASE: {n_items} items; the dense closed form is limited to {EASE_MAX_ITEMS}")
    if l2 <= 0:
        raise InputError(f"EASE: lambda {l2}; expected a positive regularisation")
    # local import: scipy is absent where the Lambda has only numpy (it imports the table's module)
    import scipy.sparse as sp

    # local import: as above
    from scipy.linalg import lapack

    x = sp.csr_matrix(train)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    # float32 input stays float32 (half the copies' memory): its products of 0/1 entries are integer counts,
    # exact in float32 below 2**24 users, and each block is widened into the float64 gram
    xt = x.T.tocsr()
    gram = np.empty((n_items, n_items))
    for a in range(0, n_items, _BLOCK):  # row blocks: the sparse gram of a big catalogue would not fit
        gram[a : a + _BLOCK] = (xt[a : a + _BLOCK] @ x).toarray()
    gram[np.diag_indices(n_items)] += l2
    # gram is symmetric, so its transpose is a Fortran-ordered view LAPACK overwrites without a copy; the
    # result's valid triangle is the view's upper one, i.e. the C-ordered array's lower one.
    chol, info = lapack.dpotrf(gram.T, lower=0, overwrite_a=1, clean=0)
    if info != 0:
        raise InputError(f"EASE: the gram matrix plus lambda {l2} is not positive definite (dpotrf {info})")
    inv, info = lapack.dpotri(chol, lower=0, overwrite_c=1)
    if info != 0:
        raise InputError(f"EASE: the inverse failed (dpotri {info})")
    P = inv.T
    _fill_upper(P)
    diag = P.diagonal().copy()
    P /= -diag[None, :]
    P[np.diag_indices(n_items)] = 0.0
    return P


def _fill_upper(m: np.ndarray) -> None:
    """Copy the lower triangle of square `m` onto its upper one, in place, a block of rows at a time."""
    n = m.shape[0]
    for a in range(0, n, _BLOCK):
        b = min(a + _BLOCK, n)
        m[a:b, b:] = m[b:, a:b].T
        block = m[a:b, a:b]
        upper = np.triu_indices(b - a, 1)
        block[upper] = block.T[upper]
