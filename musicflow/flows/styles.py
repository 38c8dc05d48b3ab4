"""Genres learned after training: a user's style as a new genre slot of a trained flow.

A genre-conditioned flow reads a genre as weights over its genres; each genre owns the columns of
the weights that read its slot (for the :class:`~musicflow.flows.keyflow.KeyFlow`: its column of
the LSTM's input weights and of the per-key genre features). A *style* is one more slot whose
columns are fitted later to a user's pieces with every other weight frozen (``musicflow style
learn``). Its columns live apart from the trained ones, and a genre vector whose style weights are
all zero takes exactly the computation of the flow without styles, so the built-in genres sound and
score bit for bit as before.

>>> cols = StyleColumns(1, rnn_inputs=8, features=4)
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
    """The weights of ``styles`` learned genre slots: what each adds to the LSTM's gate inputs
    (``input``, ``(rnn_inputs, styles)``) and to every key's features (``features``, ``(features,
    styles)``), as a built-in genre's one-hot does through its columns."""

    def __init__(self, styles: int, rnn_inputs: int, features: int) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.zeros(rnn_inputs, styles))
        self.features = nn.Parameter(torch.zeros(features, styles))
        self._wide: dict[tuple, nn.LSTM] = {}  # LSTMs with the style slots as extra inputs, by shape

    @property
    def count(self) -> int:
        return self.input.shape[1]

    def split(self, genre: torch.Tensor | None, builtin: int
              ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Genre weights ``(B, builtin + styles)`` as the built-in part and the styles' part; the
        styles' part is ``None`` where every style weight is zero (the plain computation)."""
        if genre is None:
            return None, None
        if genre.shape[-1] != builtin + self.count:
            raise MusicflowError(f"genre weights must have {builtin + self.count} columns ({builtin} genres, "
                                 f"{self.count} learned styles), got {genre.shape[-1]}")
        extra = genre[..., builtin:]
        return genre[..., :builtin], extra if bool((extra != 0).any()) else None

    def recur(self, rnn: nn.LSTM, inputs: torch.Tensor, extra: torch.Tensor, h):
        """``rnn`` over ``inputs`` ``(B, T, D)`` with each row's style weights ``extra`` ``(B, S)``
        as extra input slots read by :attr:`input` (the trained weights shared, not copied)."""
        key = (rnn.input_size, rnn.hidden_size, rnn.num_layers)
        if key not in self._wide:
            self._wide[key] = nn.LSTM(rnn.input_size + self.count, rnn.hidden_size, rnn.num_layers,
                                      batch_first=True, dropout=rnn.dropout)
        wide = self._wide[key]
        wide.train(rnn.training)
        params = dict(rnn.named_parameters())
        params["weight_ih_l0"] = torch.cat([rnn.weight_ih_l0, self.input.to(rnn.weight_ih_l0.dtype)], dim=1)
        x = torch.cat([inputs, extra.to(inputs.dtype)[:, None, :].expand(-1, inputs.shape[1], -1)], dim=-1)
        return functional_call(wide, params, (x, h))

    def feature_term(self, extra: torch.Tensor) -> torch.Tensor:
        """What the styles add to every key's features, ``(B, features)``."""
        return extra.to(self.features.dtype) @ self.features.t()


def add_style(model: nn.Module, init: torch.Tensor) -> nn.Module:
    """A copy of a genre-conditioned ``model`` (one with ``config.styles``, ``styles`` and
    ``genre_columns()``) with one more style slot, last, whose columns start as the mix ``init``
    ``(genres + styles,)`` of the existing slots' columns (a one-hot: a copy of that genre). Every
    other weight is copied unchanged."""
    if not model.config.genres:
        raise MusicflowError("a style is a new genre of a genre-conditioned model; this one has no genres")
    rnn, feat = model.genre_columns()
    if init.shape != (rnn.shape[1],):
        raise MusicflowError(f"init must weigh the model's {rnn.shape[1]} genre slots, "
                             f"got {tuple(init.shape)}")
    new = type(model)(replace(model.config, styles=model.config.styles + 1))
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    w = init.to(rnn.dtype)[:, None]
    g = model.config.genres
    state["styles.input"] = torch.cat([rnn[:, g:], rnn @ w], 1).detach()
    state["styles.features"] = torch.cat([feat[:, g:], feat @ w], 1).detach()
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
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for key in ("styles.input", "styles.features"):
        if keep:
            state[key] = state[key][:, keep]
        else:
            del state[key]
    new.load_state_dict(state)
    return new.train(model.training)
