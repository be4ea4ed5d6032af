"""The optimum of a model's arrays by scipy's ``milp`` (HiGHS inside, a separate instance from
the planner's, cold, no hint): the independent reference of the tests that compare a
formulation's answer with its model's optimum."""

from __future__ import annotations

import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp


def model_optimum(arrays, gap: float = 1e-9) -> float | None:
    """``min c x + offset`` over the arrays' rows, bounds and integrality; None when infeasible."""
    res = milp(arrays.cost, constraints=LinearConstraint(sp.csr_matrix(arrays.A), arrays.row_lo, arrays.row_hi),
               bounds=Bounds(arrays.lb, arrays.ub), integrality=arrays.integer.astype(int),
               options={"mip_rel_gap": gap})  # no time limit: the outcome never depends on speed
    if res.status == 2:
        return None
    assert res.status == 0, res.message
    return float(res.fun + arrays.offset)
