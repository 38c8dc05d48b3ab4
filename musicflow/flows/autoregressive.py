"""An autoregressive spline transform along the pitch axis: each cell given every cell below it.

Coupling layers decide half of a window's cells given the other half, so the choices inside one
beat (which notes sound together) are decided without knowing each other. What they lack is
what NADE-style models have: each pitch decided knowing the pitches already chosen at the same time.
:class:`PitchAutoregressive` orders a window's cells pitch row by pitch row, bass first, and within
a row step by step (each step's channels in turn), and bends each cell by a monotone
rational-quadratic spline whose knots are set by every cell before it in that order, by the genre
and by the context. With the spline's several bins a cell's conditional density can put its mass
on "note" or on "no note" as the lower voices demand; the layer is still exactly invertible with a
triangular Jacobian, so it is one more layer of the flow (a masked autoregressive flow).

The density direction is one pass; the inverse (sampling) takes one pass of the row net per pitch
row and one small step per cell of that row.

References: Larochelle & Murray, "The Neural Autoregressive Distribution Estimator" (2011);
Papamakarios et al., "Masked Autoregressive Flow" (2017); Durkan et al., "Neural Spline Flows"
(2019); van den Oord et al., "WaveNet" (2016) for the causal dilated convolutions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from musicflow.flows.base import Transform
from musicflow.flows.nets import CondFeatures, film_terms, modulate, pitch_term
from musicflow.flows.splines import packed_rq_spline


class PitchAutoregressive(Transform):
    """Autoregressive rational-quadratic spline over ``(B, channels, pitches, steps)`` maps.

    Cell ``(row r, cell j)`` of row ``r`` (its ``channels * steps`` cells ordered step-major) is
    transformed by a spline with ``bins`` bins on ``[-bound, bound]`` (identity outside), whose
    knots come from (a) a row feature computed by causal dilated convolutions over the rows
    below ``r`` plus a running count of what sounds below, FiLM-modulated by ``h.vec`` and fed
    ``h``'s pitch map, and (b) the cells ``< j`` of row ``r`` through a masked linear map. The
    output layer is zero, so the layer starts as the identity.

    >>> layer = PitchAutoregressive(2, pitches=6, steps=2, hidden=8, cond_dim=3, pitch_channels=2)
    >>> h = CondFeatures(torch.randn(1, 3), torch.randn(1, 2, 6))
    >>> x = torch.randn(1, 2, 6, 2)
    >>> torch.allclose(layer(x, h)[0], x, atol=1e-5)
    True
    """

    def __init__(self, channels: int, pitches: int, steps: int, hidden: int = 64, *, cond_dim: int = 0,
                 pitch_channels: int = 0, blocks: int = 5, bins: int = 8, bound: float = 4.0) -> None:
        super().__init__()
        self.channels, self.steps, self.bins, self.bound = channels, steps, bins, bound
        d = self.cells = channels * steps
        self.conv_in = nn.Conv1d(2 * d, hidden, 1)
        self.position = nn.Parameter(torch.zeros(hidden, pitches))
        self.pitch_in = nn.Conv1d(pitch_channels, hidden, 1, bias=False) if pitch_channels else None
        self.dilations = [2**i for i in range(blocks)]
        self.blocks = nn.ModuleList(nn.Conv1d(hidden, hidden, 2, dilation=k) for k in self.dilations)
        self.film = nn.Linear(cond_dim, 2 * hidden * (blocks + 1)) if cond_dim else None
        self.row_out = nn.Conv1d(hidden, hidden, 1)
        # Cell j of a row sees that row's cells i < j only.
        self.cell_weight = nn.Parameter(torch.randn(d, hidden, d) / d**0.5)
        self.register_buffer("cell_mask", torch.tril(torch.ones(d, d), diagonal=-1)[:, None, :])
        self.cell_embed = nn.Parameter(torch.zeros(d, hidden))
        self.out = nn.Linear(hidden, 3 * bins - 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    # -- layout: (B, C, P, T) maps <-> (B, cells, P) rows ---------------------------------------

    def _rows(self, x: torch.Tensor) -> torch.Tensor:
        b, c, p, t = x.shape
        return x.permute(0, 3, 1, 2).reshape(b, t * c, p)  # cell index = step * C + channel

    def _unrows(self, x: torch.Tensor) -> torch.Tensor:
        b, _, p = x.shape
        return x.reshape(b, self.steps, self.channels, p).permute(0, 2, 3, 1)

    # -- the conditioner ------------------------------------------------------------------------

    def _condition(self, h: CondFeatures | None, pitches: int):
        """What the row net takes from ``h``: the pitch map's term ``(B, hidden, P)`` and the FiLM
        scales and shifts. Computed once per call of the layer, not once per pass of the net."""
        return pitch_term(self.pitch_in, h, pitches), film_terms(self.film, h, len(self.blocks), dims=1)

    def _row_features(self, x: torch.Tensor, cond) -> torch.Tensor:
        """``(B, hidden, P)``; column ``r`` depends on the rows below ``r`` (and the condition
        ``cond`` from :meth:`_condition`) only."""
        pitch, film = cond
        p = x.shape[-1]
        shifted = F.pad(x, (1, 0))[..., :p]  # row r sees row r - 1 ...
        sounding = torch.sigmoid(3 * x)  # near 1 for cells decoded as notes, near 0 otherwise
        below = torch.cumsum(sounding, dim=-1) - sounding  # ... and how much sounds below it
        a = self.conv_in(torch.cat([shifted, below / 4], dim=1)) + self.position[:, :p]
        if pitch is not None:
            a = a + pitch
        a = modulate(a, film, 0)
        for i, (conv, k) in enumerate(zip(self.blocks, self.dilations)):
            a = a + modulate(conv(F.pad(a, (k, 0))), film, i + 1)  # causal: pad below only
        return self.row_out(a)

    def _spline_params(self, rows: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Raw spline parameters ``(B, cells, P', 3 bins - 1)`` from row features ``(B, H, P')``
        and the same rows' cells ``(B, cells, P')``."""
        within = torch.einsum("bip,jhi->bjhp", x, self.cell_weight * self.cell_mask)
        hid = F.relu(rows[:, None] + within + self.cell_embed[None, :, :, None])
        return self.out(hid.transpose(2, 3))

    def _cell_params(self, row: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, j: int) -> torch.Tensor:
        """Cell ``j``'s raw spline parameters ``(B, 3 bins - 1)`` from one row's features
        ``(B, H)`` and its cells ``(B, cells)``, ``weight`` being cell ``j``'s masked
        ``(cell_weight * cell_mask)[j]``: :meth:`_spline_params` for that cell alone."""
        hid = F.relu(row + x @ weight.T + self.cell_embed[j])
        return self.out(hid)

    def _spline(self, x: torch.Tensor, raw: torch.Tensor, inverse: bool):
        return packed_rq_spline(x, raw, self.bound, inverse)

    # -- the transform --------------------------------------------------------------------------

    def forward(self, x: torch.Tensor, h: CondFeatures | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self._rows(x)
        raw = self._spline_params(self._row_features(rows, self._condition(h, rows.shape[-1])), rows)
        y, logd = self._spline(rows, raw, inverse=False)
        return self._unrows(y), logd.flatten(1).sum(dim=1)

    def inverse(self, y: torch.Tensor, h: CondFeatures | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The exact inverse: :meth:`inverse_fixed_point`, which settles most windows in a few
        dozen parallel passes instead of one pass per pitch row, then :meth:`inverse_sequential`
        for any window it did not settle. Both give the same values up to float rounding."""
        x, logdet, settled = self.inverse_fixed_point(y, h)
        if not bool(settled.all()):
            rest = (~settled).nonzero().flatten()
            x[rest], logdet[rest] = self.inverse_sequential(y[rest], _select(h, rest))
        return x, logdet

    def inverse_fixed_point(
        self, y: torch.Tensor, h: CondFeatures | None = None, max_iter: int = 64
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Solve ``forward(x) = y`` by fixed-point (Jacobi) iteration: invert every cell's spline
        at once with the knots that the current guess gives, and repeat. The Jacobian is
        triangular, so after ``k`` passes at least the first ``k`` cells in the order are exact,
        and in practice a window settles long before all ``P * cells`` of them (Song et al.,
        "Accelerating Feedforward Computation via Parallel Nonlinear Equation Solving", 2021).
        Each window stops iterating once a pass moves none of its values by more than 1e-4
        (1e-10 in float64), so a batch costs what its slower windows need, not the slowest one
        times the batch. Returns ``x``, the log-determinant and ``settled`` ``(B,)``: false
        for windows still moving after ``max_iter`` passes (their ``x`` is not the inverse)."""
        tol = 1e-10 if y.dtype == torch.float64 else 1e-4
        target = self._rows(y)
        x, cond = target.clone(), self._condition(h, target.shape[-1])
        logdet = target.new_zeros(target.shape[0])
        active = torch.arange(target.shape[0], device=y.device)
        for _ in range(max_iter):
            whole = len(active) == target.shape[0]
            xa, c = (x, cond) if whole else (x[active], _select_condition(cond, active))
            raw = self._spline_params(self._row_features(xa, c), xa)
            new, logd = self._spline(target if whole else target[active], raw, inverse=True)
            moved = (new - xa).abs().flatten(1).amax(dim=1) > tol
            x[active], logdet[active] = new, logd.flatten(1).sum(dim=1)
            active = active[moved]
            if not len(active):
                break
        settled = torch.ones(target.shape[0], dtype=torch.bool, device=y.device)
        settled[active] = False
        return self._unrows(x), logdet, settled

    def inverse_sequential(
        self, y: torch.Tensor, h: CondFeatures | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The inverse one cell at a time in the autoregressive order: one pass of the row net
        per pitch row, one spline per cell."""
        target = self._rows(y)
        x = torch.zeros_like(target)
        logdet = target.new_zeros(target.shape[0])
        cond, masked = self._condition(h, target.shape[-1]), self.cell_weight * self.cell_mask
        for r in range(target.shape[-1]):
            # Rows above r are still zero; row r's features do not see them.
            feats = self._row_features(x, cond)[..., r]
            row = x[..., r]
            for j in range(self.cells):
                raw = self._cell_params(feats, row, masked[j], j)
                xj, logd = self._spline(target[:, j, r], raw, inverse=True)
                row = torch.cat([row[:, :j], xj[:, None], row[:, j + 1 :]], dim=1)
                logdet = logdet + logd
            x = torch.cat([x[..., :r], row[..., None], x[..., r + 1 :]], dim=-1)
        return self._unrows(x), logdet


def _take(t: torch.Tensor | None, idx: torch.Tensor) -> torch.Tensor | None:
    """Batch rows ``idx`` of ``t`` (``None`` and batch-1 tensors, which broadcast, pass as they are)."""
    return t if t is None or t.shape[0] == 1 else t[idx]


def _select(h: CondFeatures | None, idx: torch.Tensor) -> CondFeatures | None:
    """The batch rows ``idx`` of a condition."""
    return None if h is None else CondFeatures(_take(h.vec, idx), _take(h.pitch_map, idx))


def _select_condition(cond, idx: torch.Tensor):
    """The batch rows ``idx`` of :meth:`PitchAutoregressive._condition`'s output."""
    pitch, film = cond
    return _take(pitch, idx), None if film is None else tuple(_take(f, idx) for f in film)
