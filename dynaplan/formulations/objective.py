"""The objective of the pool-network models, defined apart from their variable blocks.

The blocks of :mod:`.network` (and the cluster's ``new_servers``) are added cost-free; one call
of :func:`define_objective` then prices every block the model has, so a model with another
objective (server cost, carbon, a weighted sum) reuses the blocks as they are. Equations: the
objective sections of ``formulations/pool.md``, ``cluster.md`` and ``monolithic.md``:

    min  omega_P * (power terms, W)  +  omega_S * sum_{servers} pi_h  [+ M sum_c u_c]

where omega_P = ``energy + carbon * I / 1000`` (objective units per W; ``I`` gCO2/kWh, so
``P I / 1000`` is gCO2/h), omega_S = ``server_cost`` (objective units per USD/h) and pi_h the
server-hour price of hardware ``h`` (``HardwareType.price_usd_per_server_h``). The power terms
are those of (pool.obj) / (cluster.obj), the amortised transition prices included; the unserved
penalty ``M`` is charged as given, in objective units per req/s (W per req/s for the default
weights). The default weights (energy 1, the rest 0) give exactly the power objective.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from dynaplan.formulations import network as nw
from dynaplan.solvers.model import LinearModel
from dynaplan.validation import InputModel


class ObjectiveWeights(InputModel):
    """Weights of the objective's terms; the default is cluster power (W), as the planner uses."""

    energy: float = Field(default=1.0, ge=0, le=1e6,
                          description="Weight per W of cluster power (energy per second), amortised transition "
                                      "costs included (objective units per W).")
    server_cost: float = Field(default=0.0, ge=0, le=1e6,
                               description="Weight per USD/h of active servers at their server-hour price "
                                           "(objective units per USD/h).")
    carbon: float = Field(default=0.0, ge=0, le=1e6,
                          description="Weight per gCO2/h emitted at carbon_intensity_g_per_kwh "
                                      "(objective units per gCO2/h).")
    carbon_intensity_g_per_kwh: float = Field(default=0.0, ge=0, le=1e4,
                                              description="Grid carbon intensity the carbon term uses (gCO2/kWh).")

    @model_validator(mode="after")
    def _some_weight(self):
        if self.power_weight == 0 and self.server_cost == 0:
            raise ValueError("objective weights: every term has weight 0 (set energy, server_cost, or carbon "
                             "with a carbon_intensity_g_per_kwh)")
        return self

    @property
    def power_weight(self) -> float:
        """omega_P: objective units per W (energy, plus carbon at the stated intensity)."""
        return self.energy + self.carbon * self.carbon_intensity_g_per_kwh / 1000.0


ENERGY = ObjectiveWeights()


def _per_piece(net: nw.Network, values_by_hw) -> np.ndarray:
    return np.array([values_by_hw(net.hardware[h]) for h in net.pieces["hardware"]], dtype=float)


def _server_price(net: nw.Network, hardware) -> np.ndarray:
    return np.array([net.hardware[h].price_usd_per_server_h for h in hardware], dtype=float)


def define_objective(m: LinearModel, net: nw.Network, weights: ObjectiveWeights = ENERGY,
                     unserved_penalty: float | None = None,
                     transition_prices: nw.TransitionPrices | None = None) -> pd.Series:
    """Set the cost of every variable block ``m`` has, and the load-cost offset.

    Blocks priced (when present): ``n`` (pool.obj: ``A_{k,j} - e_h tp_k`` per instance), ``s``
    (cluster.obj: ``m_k A_k`` per recipe server, plus its price), ``w`` (``B_{k,j}``), ``z``
    (``D_{k,c} / lmax_{k,c} - kappa_c``), ``y`` (``e_h G_h`` per server, plus its price), ``u``
    (``M - kappa_c``); the transition blocks ``reclocked``, ``resharded_gpus``, ``started_gpus``
    and ``new_servers`` at ``transition_prices`` (W). Power terms are scaled by omega_P.

    Returns kappa_c scaled by omega_P (objective units per req/s, :func:`network.load_cost_shift`):
    the objective offset is ``sum_c kappa_c L_c`` for the demand built with, and a re-solve with
    other demand moves it by the same rate.
    """
    pw, sc = weights.power_weight, weights.server_cost
    vb = m.var_blocks
    pc = net.pieces
    tp = pc["tp"].to_numpy()
    if "n" in vb:
        idle = _per_piece(net, lambda h: h.idle_power_w)
        m.set_cost("n", pw * (pc["static_w"].to_numpy() - idle * tp))
    if "s" in vb:
        per_server = _per_piece(net, lambda h: h.gpus_per_server) // tp
        m.set_cost("s", pw * (per_server * pc["static_w"].to_numpy()) + sc * _server_price(net, pc["hardware"]))
    if "w" in vb:
        m.set_cost("w", pw * pc["w_per_util"].to_numpy())
    kappa = nw.load_cost_shift(net)
    if "z" in vb:
        a = net.arcs
        raw = a["extra_w_per_util"].to_numpy() / a["max_load_rps"].to_numpy()
        m.set_cost("z", pw * (raw - kappa.reindex(a["request_class"]).to_numpy()))
        m.objective_offset += pw * float(kappa @ net.demand_rps)  # the shift back, for the demand built with
    if "y" in vb:
        hp = net.hw_pools
        g = np.array([net.hardware[h].gpus_per_server for h in hp["hardware"]])
        idle = np.array([net.hardware[h].idle_power_w for h in hp["hardware"]])
        m.set_cost("y", pw * (idle * g) + sc * _server_price(net, hp["hardware"]))
    if "u" in vb:
        if unserved_penalty is None:
            raise ValueError("model has unserved variables u but no unserved penalty was given")
        m.set_cost("u", unserved_penalty - pw * kappa.to_numpy())
    if transition_prices is not None:
        _price_transitions(m, pw, transition_prices)
    return pw * kappa


def _price_transitions(m: LinearModel, pw: float, prices: nw.TransitionPrices) -> None:
    """(pool.md 6-10, cluster.md new_servers) q x reclock, g x reshard per GPU, v x start per GPU,
    and new servers x server start, each amortised (W)."""
    vb = m.var_blocks
    if "reclocked" in vb:
        m.set_cost("reclocked", pw * np.array([prices.reclock_w[(h, int(t))] for _, h, t in vb["reclocked"].labels]))
    if "resharded_gpus" in vb:
        m.set_cost("resharded_gpus", pw * np.array([prices.reshard_w_per_gpu[h] for _, h in vb["resharded_gpus"].labels]))
    if "started_gpus" in vb:
        m.set_cost("started_gpus", pw * np.array([prices.start_w_per_gpu[h] for _, h in vb["started_gpus"].labels]))
    if "new_servers" in vb:
        m.set_cost("new_servers", pw * np.array([prices.server_start_w[h] for h in vb["new_servers"].labels]))
