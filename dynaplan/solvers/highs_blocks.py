"""A block-diagonal LP solved block by block in one HiGHS model (:class:`BlockLP`).

An LP whose blocks share one constraint matrix and differ only in column bounds, row sides and
costs (the periods of a capacity plan on a fixed fleet) is solved as a sequence of small LPs:
one model holds a block, each next block changes its bounds and costs in place and dual simplex
starts from the basis the previous block left. The blocks' optima add up to the whole LP's,
and the reduced costs of the columns the blocks share (fixed by bounds) add up to a subgradient
of the whole LP's value in those bounds.
"""

from __future__ import annotations

import highspy
import numpy as np
import scipy.sparse as sp

from dynaplan.solvers.highs import _make_highs, _pass
from dynaplan.solvers.model import ModelArrays
from dynaplan.solvers.result import SolveOptions


def _finite(v: np.ndarray) -> np.ndarray:
    inf = highspy.kHighsInf
    return np.where(v == np.inf, inf, np.where(v == -np.inf, -inf, v))


class BlockLP:
    """Blocks ``k`` of ``min c_k x_k  s.t.  row_lo_k <= A x_k <= row_hi_k, lb_k <= x_k <= ub_k`` with
    one matrix ``A``; :meth:`solve` returns each block's status, solution, reduced costs and value."""

    def __init__(self, A: sp.csc_matrix, opts: SolveOptions) -> None:
        self._A = sp.csc_matrix(A)
        self._opts = opts.model_copy(update={"mip_rel_gap": 0.0})
        self._h = None

    def solve(self, cost: np.ndarray, lb: np.ndarray, ub: np.ndarray, row_lo: np.ndarray, row_hi: np.ndarray,
              order=None):
        """Arrays (K, n) for columns and (K, m) for rows, one line per block; ``order`` the
        sequence of blocks (similar blocks next to each other re-solve in fewer iterations).
        Returns (optimal (K,) bool, x (K, n), reduced costs (K, n), value (K,))."""
        K, n = cost.shape
        m = row_lo.shape[1]
        ok = np.zeros(K, dtype=bool)
        x = np.zeros((K, n))
        dual = np.zeros((K, n))
        val = np.zeros(K)
        cols = np.arange(n, dtype=np.int32)
        rows = np.arange(m, dtype=np.int32)
        for k in (range(K) if order is None else order):
            if self._h is None:
                self._h = _make_highs(self._opts)
                _pass(self._h, ModelArrays(cost=cost[k], lb=lb[k], ub=ub[k], integer=np.zeros(n, dtype=bool),
                                           A=self._A, row_lo=row_lo[k], row_hi=row_hi[k], offset=0.0))
            else:
                h = self._h
                h.changeColsBounds(n, cols, _finite(lb[k]), _finite(ub[k]))
                h.changeRowsBounds(m, rows, _finite(row_lo[k]), _finite(row_hi[k]))
                h.changeColsCost(n, cols, np.asarray(cost[k], dtype=float))
            self._h.run()
            if self._h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                self._h = None   # start the next block from a fresh model
                continue
            s = self._h.getSolution()
            ok[k] = True
            x[k] = s.col_value
            dual[k] = s.col_dual
            val[k] = self._h.getInfo().objective_function_value
        return ok, x, dual, val
