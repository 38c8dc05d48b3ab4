"""Decoding a :class:`~musicflow.flows.keyflow.KeyFlow` frame key by key, fast.

Composing decodes one frame at a time and, inside it, one key at a time. Run through the model's
modules, each key would pay the causal pitch convolution over the whole frame and the module-call
overhead of every block. Here the convolution becomes, for each key and state, what that key adds
to every key above it (:meth:`KeyDecoding.decode_plan`), accumulated as the frame is decoded, and
the per-key blocks run as plain linear maps: the same states, bit for bit, in a fraction of the
time.

Composing one piece also decodes several steps in one pass (:meth:`KeyDecoding.decode_steps`): most
steps of music hold every note that sounds, so the next few frames are guessed to do so, the LSTM
reads the guesses, and every guessed frame is decoded at once. A frame is exact when the frames
before it match their guesses, so each pass keeps the frames up to and including the first that
does not: the same states as decoding step by step (up to float rounding, which could flip a key
whose base point lies within about 1e-7 of a bin edge), in fewer passes (about 5 steps a pass for
Renaissance polyphony in long notes, 2 for a jig), each costing little more than one step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from musicflow.errors import MusicflowError

#: The most frames one pass of :meth:`KeyDecoding.decode_steps` decodes for one piece, and the first
#: pass's; each later pass decodes twice what the pass before it kept, at least 2.
AHEAD, FIRST_AHEAD = 8, 4
#: Steps the LSTM may re-read each pass before its state is moved on by a call of its own.
CATCH_UP = 16


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
        decoding, whatever the first guess. A frame settles in a few passes, each one batched pass
        of the per-key blocks instead of one small pass per key."""
        return self.decode_ahead(features, u, 1, temperature, share, plan)[:, 0]

    @torch.no_grad()
    def decode_ahead(self, features: torch.Tensor, u: torch.Tensor, window: int, temperature: float = 1.0,
                     share: torch.Tensor | None = None, plan: tuple | None = None,
                     guess: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`decode_keys` for ``window`` frames of each of ``n`` pieces at once (rows piece-major:
        ``u`` ``(n * window, keys)``, ``features`` ``(n * window * e, keys, channels)``, ``share``
        ``(n * window, e)``), starting every frame from ``guess`` ``(n, keys)`` (``None``: silence).

        With a guess, the frames are a speculative window (:meth:`decode_steps`): frame ``j`` counts
        only if frames ``0 .. j - 1`` equal the guess, so once a frame's settled keys differ from it
        the frames after that one may be dropped (the caller keeps the frames up to and including
        the first that differs). Returns the states ``(n, w, keys)`` of the first ``w <= window``
        frames, each the key-by-key decoding of its row."""
        nw, k = u.shape
        n = nw // window
        e = 1 if share is None else share.shape[1]
        s = self.config.states
        wb, layers = plan if plan is not None else self.decode_plan()
        c = features.shape[-1]
        adds = wb.reshape(k * s, k * c)  # (key below, its state) -> what every key reads
        features, u = features.view(n, window, e, k, c), u.view(n, window, k)
        share = None if share is None else share.view(n, window, e)
        start = torch.zeros(n, k, dtype=torch.long, device=u.device) if guess is None else guess
        states = start[:, None].repeat(1, window, 1)
        low, alive = 0, window  # keys below ``low`` are final; frames from ``alive`` on are dropped
        while low < k:
            m = n * alive
            onehot = F.one_hot(states[:, :alive], s).to(features.dtype).view(m, k * s)
            below = (onehot @ adds[:, low * c:]).view(m, -1, c)
            h = features[:, :alive, :, low:].reshape(m * e, k - low, c)
            h = h + (below if e == 1 else below.repeat_interleave(e, 0))
            for l1, l2 in layers[:-1]:  # the residual blocks, without module-call overhead
                h = h + F.linear(F.relu(F.linear(F.relu(h), *l1)), *l2)
            logp = F.log_softmax(F.linear(h, *layers[-1]) / temperature, -1)
            p = logp.exp() if e == 1 else torch.softmax(
                (share[:, :alive].reshape(m, e)[:, :, None, None] * logp.view(m, e, k - low, s)).sum(1), -1)
            new = (u[:, :alive, low:, None] >= p.view(n, alive, k - low, s).cumsum(-1)[..., :-1]).sum(-1)
            changed = (new != states[:, :alive, low:]).flatten(0, 1).any(0).nonzero()
            if not len(changed):
                break
            states[:, :alive, low:] = new
            low += int(changed[0]) + 1
            if guess is not None and alive > 1:
                off = (states[:, :alive - 1, :low] != guess[:, None, :low]).any(2).any(0).nonzero()
                alive = min(alive, int(off[0]) + 1) if len(off) else alive
        return states[:, :alive]

    @torch.no_grad()
    def decode_steps(self, u: torch.Tensor, experts: torch.Tensor, share: torch.Tensor | None,
                     phase: torch.Tensor, prefix: torch.Tensor | None = None, temperature: float = 1.0,
                     ahead: int = AHEAD, progress: Callable[[int], object] | None = None) -> torch.Tensor:
        """Key states ``(n, T, keys)`` decoded from base points ``u`` ``(n, T, keys)`` after
        ``prefix`` ``(n, T0, keys)`` (``None``: from the start), under genre rows ``experts``
        ``(e, G)`` mixed per piece by ``share`` ``(n, e)`` (``None``: one expert), with each step's
        place in its bar ``phase`` ``(n, T0 + T)``; ``progress`` is called with the steps each pass
        decodes.

        One piece is decoded up to ``ahead`` steps a pass (1: step by step; the same states either
        way): the frames after the last one decoded are guessed to hold every key that sounds in it,
        the LSTM reads the guesses and :meth:`decode_ahead` decodes the window, and the pass keeps its
        frames up to and including the first that differs from the guess. Each pass tries twice
        what the last one kept. A batch of pieces goes step by step, since a pass keeps only what
        every piece keeps."""
        n, t, k = u.shape
        if ahead < 1:
            raise MusicflowError(f"ahead must be at least 1 step a pass, got {ahead}")
        if t == 0:
            return u.new_zeros(n, 0, k)
        e = experts.shape[0]
        genre = experts.to(u.dtype).repeat(n, 1)  # piece-major: (n * e, G)
        ph = phase.repeat_interleave(e, 0)
        pre = u.new_zeros(n, 0, k) if prefix is None else prefix.to(u.dtype)
        t0 = pre.shape[1]
        h = self._initial(n * e)
        prev = u.new_zeros(n * e, 1, k)
        if t0:
            past = torch.cat([prev, pre[:, :-1].repeat_interleave(e, 0)], dim=1)
            _, h = self.recur(past, genre, ph[:, :t0], h)
            prev = pre[:, -1:].repeat_interleave(e, 0)
        recent = pre[:, -self.config.history:].repeat_interleave(e, 0)
        plan = self.decode_plan()
        unread = prev[:, :0]  # the LSTM inputs of kept steps that ``h`` has not read yet
        out, step = [], 0
        window = min(ahead, FIRST_AHEAD) if n == 1 else 1
        while step < t:
            w = min(window, t - step)
            guess = (prev > 0).to(u.dtype)  # every sounding key held
            inputs = torch.cat([prev, guess.expand(-1, w - 1, -1)], dim=1)
            r = unread.shape[1]
            states, h_all = self.recur(torch.cat([unread, inputs], dim=1), genre,
                                       ph[:, t0 + step - r:t0 + step + w], h)
            past = self.history(torch.cat([recent, guess.expand(-1, w, -1)], dim=1))[:, -w:]
            features = self.frame_features(states[:, r:].reshape(n * e * w, -1),
                                           past.reshape(n * e * w, -1, k), genre.repeat_interleave(w, 0))
            features = features.view(n, e, w, k, -1).transpose(1, 2).reshape(n * w * e, k, -1)
            frames = self.decode_ahead(features, u[:, step:step + w].reshape(n * w, k), w, temperature,
                                       None if share is None else share.repeat_interleave(w, 0), plan,
                                       guess[::e, 0].long())
            held = (frames[:, :-1] == guess[::e].long()).all(2).all(0)
            kept = 1 + int(held.long().cumprod(0).sum())
            if kept == w:  # every input the LSTM read was right
                h, unread = h_all, prev[:, :0]
            else:
                unread = torch.cat([unread, inputs[:, :kept]], dim=1)
                if unread.shape[1] >= CATCH_UP:
                    end = t0 + step + kept
                    _, h = self.recur(unread, genre, ph[:, end - unread.shape[1]:end], h)
                    unread = prev[:, :0]
            new = frames[:, :kept].to(u.dtype)
            rows = new.repeat_interleave(e, 0)
            prev, recent = rows[:, -1:], torch.cat([recent, rows], dim=1)[:, -self.config.history:]
            out.append(new)
            step += kept
            if progress is not None:
                progress(kept)
            if n == 1:
                window = min(ahead, max(2, 2 * kept))
        return torch.cat(out, dim=1)

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
