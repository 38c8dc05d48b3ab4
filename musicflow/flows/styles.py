"""Genres learned after training: a user's style as a new genre slot of a trained flow.

A genre-conditioned flow reads a genre as weights over its genres; each genre owns the columns of
the weights that read its slot (the :class:`~musicflow.flows.keyflow.KeyFlow`: its column of the
LSTM's input weights and of the per-key genre features; the Glow and the neural-ODE flow: its row
of the genre embedding table). A *style* is one more slot whose columns are fitted later to a
user's pieces with every other weight frozen (``musicflow style learn``). Its columns live apart
from the trained ones, and a genre vector whose style weights are all zero takes exactly the
computation of the flow without styles, so the built-in genres sound and score bit for bit as
before.

Where a genre's columns are too few to hold a style (they shift every key alike), a KeyFlow style
may also own an *adapter* (:class:`StyleAdapters`): a bias per key and a low-rank change of the map
from the LSTM state to the keys' features, both scaled by the style's weight in the genre vector,
so they too vanish for the built-in genres.

>>> cols = StyleColumns(1, 8, 4)
>>> base, extra = cols.split(torch.tensor([[0.0, 1.0, 0.0]]), builtin=2)
>>> base.tolist(), extra
([[0.0, 1.0]], None)
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn
from torch.func import functional_call

from musicflow.errors import MusicflowError


class StyleColumns(nn.Module):
    """The weights of ``styles`` learned genre slots: one matrix ``(size, styles)`` per set of
    genre columns the flow has (``sizes``), column ``j`` what style ``j`` adds where a built-in
    genre's one-hot adds its own column."""

    def __init__(self, styles: int, *sizes: int) -> None:
        super().__init__()
        self.columns = nn.ParameterList([nn.Parameter(torch.zeros(n, styles)) for n in sizes])
        self._wide: dict[tuple, nn.LSTM] = {}  # LSTMs with the style slots as extra inputs, by shape

    @property
    def count(self) -> int:
        return self.columns[0].shape[1]

    def split(self, genre: torch.Tensor | None, builtin: int
              ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Genre weights ``(B, builtin + styles)`` (or ``(B, builtin)``: no style) as the built-in
        part and the styles' part; the styles' part is ``None`` where every style weight is zero
        (the plain computation)."""
        if genre is None or genre.shape[-1] == builtin:
            return genre, None
        if genre.shape[-1] != builtin + self.count:
            raise MusicflowError(f"genre weights must have {builtin + self.count} columns ({builtin} genres, "
                                 f"{self.count} learned styles), got {genre.shape[-1]}")
        extra = genre[..., builtin:]
        return genre[..., :builtin], extra if bool((extra != 0).any()) else None

    def term(self, extra: torch.Tensor, which: int = 0) -> torch.Tensor:
        """What the styles weighted ``extra`` ``(B, styles)`` add through column set ``which``,
        ``(B, size)``."""
        cols = self.columns[which]
        return extra.to(cols.dtype) @ cols.t()

    def recur(self, rnn: nn.LSTM, inputs: torch.Tensor, extra: torch.Tensor, h, which: int = 0):
        """``rnn`` over ``inputs`` ``(B, T, D)`` with each row's style weights ``extra`` ``(B, S)``
        as extra input slots read by column set ``which`` (the trained weights shared, not copied)."""
        key = (rnn.input_size, rnn.hidden_size, rnn.num_layers)
        if key not in self._wide:
            self._wide[key] = nn.LSTM(rnn.input_size + self.count, rnn.hidden_size, rnn.num_layers,
                                      batch_first=True, dropout=rnn.dropout)
        wide = self._wide[key]
        wide.train(rnn.training)
        params = dict(rnn.named_parameters())
        cols = self.columns[which].to(rnn.weight_ih_l0.dtype)
        params["weight_ih_l0"] = torch.cat([rnn.weight_ih_l0, cols], dim=1)
        x = torch.cat([inputs, extra.to(inputs.dtype)[:, None, :].expand(-1, inputs.shape[1], -1)], dim=-1)
        return functional_call(wide, params, (x, h))


class StyleAdapters(nn.Module):
    """Per style ``j``: a bias per key and channel ``(keys, channels)`` and a rank-``rank`` change
    ``up_j @ down_j`` of a ``hidden -> keys * channels`` map, added to the keys' features in
    proportion to the style's weight. ``up`` starts at zero (no change until fitted); a style
    learned without an adapter keeps all three at zero."""

    def __init__(self, styles: int, keys: int, channels: int, hidden: int, rank: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(styles, keys, channels))
        self.down = nn.Parameter(torch.zeros(styles, rank, hidden))
        self.up = nn.Parameter(torch.zeros(styles, keys * channels, rank))

    def forward(self, extra: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """What styles weighted ``extra`` ``(N, styles)`` add to the features ``(N, keys, channels)``
        of frames whose LSTM states are ``state`` ``(N, hidden)``."""
        w = extra.to(self.bias.dtype)
        low = torch.einsum("nh,srh->nsr", state, self.down) * w[:, :, None]
        out = torch.einsum("nsr,sjr->nj", low, self.up).view(-1, *self.bias.shape[1:])
        return out + torch.einsum("ns,skc->nkc", w, self.bias)


def with_adapter(model: nn.Module, rank: int, generator: torch.Generator | None = None) -> nn.Module:
    """A copy of a KeyFlow ``model`` whose last style owns an adapter of ``rank``: ``down`` drawn
    from N(0, 1/hidden) by ``generator``, ``up`` and the key bias at zero (so the copy computes
    exactly what ``model`` does until the adapter is fitted). Every other weight is copied."""
    cfg = model.config
    if not hasattr(cfg, "adapter_rank"):
        raise MusicflowError("adapter: only the sequence flow (keyflow) takes a style adapter")
    if not cfg.styles:
        raise MusicflowError("adapter: the model has no style to adapt")
    if rank < 1 or (cfg.adapter_rank and rank != cfg.adapter_rank):
        have = f"; its styles' adapters have rank {cfg.adapter_rank}" if cfg.adapter_rank else ""
        raise MusicflowError(f"adapter rank must be a positive whole number{have}, got {rank}")
    new = type(model)(replace(cfg, adapter_rank=rank))
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    fresh = new.adapters.state_dict()
    for name, value in fresh.items():
        key = f"adapters.{name}"
        if key in state:
            value.copy_(state[key])
        state[key] = value
    down = state["adapters.down"]
    down[-1] = torch.randn(down.shape[1:], generator=generator, dtype=down.dtype) / down.shape[-1] ** 0.5
    state["adapters.up"][-1] = 0
    state["adapters.bias"][-1] = 0
    new.load_state_dict(state)
    return new.train(model.training)


def genre_width(genre: torch.Tensor, builtin: int, styles: int) -> int:
    """The genre width a flow with ``builtin`` genres and ``styles`` styles takes for ``genre``:
    its built-in genres alone (a condition that weighs no style) or all of its slots."""
    return builtin if genre.dim() == 2 and genre.shape[1] == builtin else builtin + styles


def style_capable(model: nn.Module) -> bool:
    """Whether ``model`` can take learned styles (a genre-conditioned flow with style slots)."""
    return "styles" in getattr(type(getattr(model, "config", None)), "__dataclass_fields__", {}) \
        and bool(getattr(model.config, "genres", getattr(model.config, "n_genres", 0)))


def add_style(model: nn.Module, init: torch.Tensor) -> nn.Module:
    """A copy of a style-capable ``model`` (``config.styles``, ``styles``, ``genre_columns()``)
    with one more style slot, last, whose columns start as the mix ``init`` ``(genres + styles,)``
    of the existing slots' columns (a one-hot: a copy of that genre). Every other weight is copied
    unchanged."""
    if not style_capable(model):
        raise MusicflowError("a style is a new genre of a genre-conditioned model; this one cannot take one")
    sets = model.genre_columns()
    if init.shape != (sets[0].shape[1],):
        raise MusicflowError(f"init must weigh the model's {sets[0].shape[1]} genre slots, "
                             f"got {tuple(init.shape)}")
    new = type(model)(replace(model.config, styles=model.config.styles + 1))
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    builtin = sets[0].shape[1] - model.config.styles
    for j, cols in enumerate(sets):
        state[f"styles.columns.{j}"] = torch.cat([cols[:, builtin:], cols @ init.to(cols.dtype)[:, None]], 1)
    for k, v in state.items():
        if k.startswith("adapters."):  # the new style starts with no adapter
            state[k] = torch.cat([v, torch.zeros_like(v[:1])])
    new.load_state_dict(state)
    return new.train(model.training)


def remove_style(model: nn.Module, index: int) -> nn.Module:
    """A copy of ``model`` without its style slot ``index`` (counted among the styles); the other
    slots keep their columns."""
    count = model.config.styles
    if not 0 <= index < count:
        raise MusicflowError(f"style index {index}: the model has {count} styles")
    new = type(model)(replace(model.config, styles=count - 1))
    keep = [j for j in range(count) if j != index]
    state = {}
    for k, v in model.state_dict().items():
        if k.startswith(("styles.", "adapters.")):
            if keep:  # columns are indexed by style on their last axis, adapters on their first
                state[k] = v[:, keep].clone() if k.startswith("styles.") else v[keep].clone()
        else:
            state[k] = v.detach().clone()
    new.load_state_dict(state)
    return new.train(model.training)


def embed_genre(table: torch.Tensor, styles: StyleColumns | None, genre: torch.Tensor) -> torch.Tensor:
    """Genre weights ``(B, G + styles)`` through an embedding ``table`` ``(G, E)`` and the styles'
    rows (their column set 0, ``(E, styles)``): ``(B, E)``."""
    base, extra = (genre, None) if styles is None else styles.split(genre, table.shape[0])
    emb = base.to(table.dtype) @ table
    return emb if extra is None else emb + styles.term(extra)
