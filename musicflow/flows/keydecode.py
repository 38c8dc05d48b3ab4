"""Decoding a :class:`~musicflow.flows.keyflow.KeyFlow` frame key by key, fast.

Composing decodes one frame at a time and, inside it, one key at a time. Run through the model's
modules, each key would pay the causal pitch convolution over the whole frame and the module-call
overhead of every block. Here the convolution becomes, for each key and state, what that key adds
to every key above it (:meth:`KeyDecoding.decode_plan`), accumulated as the frame is decoded, and
the per-key blocks run as plain linear maps: the same states, bit for bit, in a fraction of the
time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from musicflow.errors import MusicflowError


class KeyDecoding:
    """What the KeyFlow adds for decoding key by key; it reads the flow's ``from_below``,
    ``blocks``, ``to_logit``, ``keys`` and ``config``."""

    def _below_by_key(self) -> torch.Tensor:
        """The causal pitch convolution as what each key adds to every key above it:
        ``(keys, states - 1, keys, channels)``, zero at and below the key itself."""
        k = self.keys
        w = self.from_below.weight  # (channels, states - 1, keys): tap m reads key j - keys + m
        src, dst = torch.arange(k)[:, None], torch.arange(k)[None, :]
        tap = (src - dst + k).clamp(max=k - 1)  # (source key, target key)
        wb = w[:, :, tap].permute(2, 1, 3, 0)  # (source, states - 1, target, channels)
        return wb * (dst > src)[:, None, :, None].to(w.dtype)

    @torch.no_grad()
    def decode_keys(self, features: torch.Tensor, u: torch.Tensor, temperature: float = 1.0,
                    share: torch.Tensor | None = None, plan: tuple | None = None) -> torch.Tensor:
        """The key states ``(n, keys)`` of one frame decoded from base points ``u`` ``(n, keys)``,
        key by key, given :meth:`frame_features` ``(n * e, keys, channels)`` of ``e`` experts per
        frame (frame-major) mixed as a product of experts with weights ``share`` ``(n, e)`` (rows
        summing to 1; ``None``: one expert). What a key adds to the keys above it accumulates as the
        frame is decoded, so each key costs one pass of the per-key blocks. ``plan`` is
        :meth:`decode_plan`, computed once for many frames."""
        n, k = u.shape
        e = 1 if share is None else share.shape[1]
        s = self.config.states
        wb, layers = plan if plan is not None else self.decode_plan()
        below = torch.zeros_like(features)
        states = torch.zeros(n, k, dtype=torch.long, device=u.device)
        for key in range(k):
            h = features[:, key] + below[:, key]
            for l1, l2 in layers[:-1]:  # the residual blocks, without module-call overhead
                h = h + F.linear(F.relu(F.linear(F.relu(h), *l1)), *l2)
            logp = F.log_softmax(F.linear(h, *layers[-1]) / temperature, -1)
            p = logp.exp() if e == 1 else torch.softmax((share[..., None] * logp.view(n, e, s)).sum(1), -1)
            state = (u[:, key, None] >= p.cumsum(-1)[:, :-1]).sum(-1)
            states[:, key] = state
            if key + 1 < k:
                rows = wb[key, state, key + 1:]
                below[:, key + 1:] += rows if e == 1 else rows.repeat_interleave(e, 0)
        return states

    @torch.no_grad()
    def decode_plan(self) -> tuple[torch.Tensor, list]:
        """What :meth:`decode_keys` reads, in eval mode (dropout off): what key ``j`` in state
        ``v`` adds to the keys above it ``(keys, states, keys, channels)``, zero for state 0, so that
        picking a row gives exactly the training-time convolution's one-hot product; and the
        weights and biases of :attr:`blocks` (pairs of linear layers) and of :attr:`to_logit`,
        which gains a zero row first: the logit of state 0, 0 by construction."""
        if self.training:
            raise MusicflowError("decode_keys runs in eval mode (model.eval())")
        k, s, c = self.keys, self.config.states, self.config.channels
        wb = F.pad(self._below_by_key(), (0, 0, 0, 0, 1, 0)).reshape(k, s, k, c)
        pairs = [((b.net[1].weight, b.net[1].bias), (b.net[4].weight, b.net[4].bias)) for b in self.blocks]
        last = F.pad(self.to_logit.weight, (0, 0, 1, 0)), F.pad(self.to_logit.bias, (1, 0))
        return wb, [*pairs, last]
