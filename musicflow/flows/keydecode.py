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
        each key given the keys below it and :meth:`frame_features` ``(n * e, keys, channels)`` of
        ``e`` experts per frame (frame-major) mixed as a product of experts with weights ``share``
        ``(n, e)`` (rows summing to 1; ``None``: one expert). ``plan`` is :meth:`decode_plan`,
        computed once for many frames.

        Solved as a fixed point rather than one key after another: every unsettled key is decoded
        at once from the current guess of the keys below it, until nothing changes. A key reads only
        the keys below it, so the keys below the lowest one that changed, and that one, are final
        after each pass: the fixed point is reached within ``keys + 1`` passes and is the key-by-key
        decoding. A frame settles in a few passes, each one batched pass of the per-key blocks
        instead of one small pass per key."""
        n, k = u.shape
        e = 1 if share is None else share.shape[1]
        s = self.config.states
        wb, layers = plan if plan is not None else self.decode_plan()
        c = features.shape[-1]
        adds = wb.reshape(k * s, k * c)  # (key below, its state) -> what every key reads
        states = torch.zeros(n, k, dtype=torch.long, device=u.device)
        low = 0  # keys below ``low`` are final
        while low < k:
            onehot = F.one_hot(states, s).to(features.dtype).view(n, k * s)
            below = (onehot @ adds[:, low * c:]).view(n, -1, c)
            h = features[:, low:] + (below if e == 1 else below.repeat_interleave(e, 0))
            for l1, l2 in layers[:-1]:  # the residual blocks, without module-call overhead
                h = h + F.linear(F.relu(F.linear(F.relu(h), *l1)), *l2)
            logp = F.log_softmax(F.linear(h, *layers[-1]) / temperature, -1)
            p = logp.exp() if e == 1 else torch.softmax(
                (share[:, :, None, None] * logp.view(n, e, k - low, s)).sum(1), -1)
            new = (u[:, low:, None] >= p.cumsum(-1)[..., :-1]).sum(-1)
            changed = (new != states[:, low:]).any(0).nonzero()
            if not len(changed):
                break
            states[:, low:] = new
            low += int(changed[0]) + 1
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
