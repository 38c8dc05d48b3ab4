"""What the Composer does in latent space: the seeded draws, and a user's piece varied, recast
under another genre, or moved towards another piece. :class:`~musicflow.compose.Composer` takes
these methods from :class:`LatentOps`; they rely only on its public methods."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pretty_midi
import torch

from musicflow.compose.genre import GenreArg
from musicflow.compose.options import Options
from musicflow.compose.reading import Input, MidiInput
from musicflow.errors import MusicflowError
from musicflow.files import atomic_write
from musicflow.sampling import clean_continuation


def new_seed(seed: int | None) -> int:
    """``seed``, or a fresh random one (which the caller reports, so the piece can be made again)."""
    return int(seed) if seed is not None else int(torch.randint(0, 2**31 - 1, ()).item())


def draw_latents(n: int, seed: int, temperature: float, dim: int, candidates: int = 1
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The latents a seed gives ``n`` windows: ``(n, dim)``, or ``(n, K, dim)`` candidates and the
    uniform noise ``(n,)`` that resamples the particles after each window. One candidate draws the
    same latents as plain sampling."""
    g = torch.Generator().manual_seed(int(seed))
    z = torch.randn(n, candidates, dim, generator=g) * float(temperature)
    if candidates == 1:
        return z[:, 0], None
    return z, torch.rand(n, generator=g)


@dataclass
class Result:
    """A generated piece: MIDI, its roll (model key), the latents and the seed that made it."""

    midi: pretty_midi.PrettyMIDI
    roll: np.ndarray
    latents: torch.Tensor
    seed: int
    genre: dict[str, float]
    #: The outline the piece was composed to (model rows; see :mod:`musicflow.compose.outlines`),
    #: if any: four numbers, or four per window for a piece read block by block (``transfer``,
    #: ``variations``, ``interpolate``). :meth:`Composer.decode_latents` takes it back.
    outline: list[float] | list[list[float]] | None = None
    #: The time signature it was composed in (``"6/8"``), for a model that composes in several.
    time_signature: str | None = None


#: The settings a recast of the user's own piece takes: it keeps the piece's key, tempo and length.
_RECAST = ("program", "velocity", "parts")


class LatentOps:
    """Variations, transfer and interpolation of a user's piece, and saved latents (mixed into
    ``Composer``)."""

    def save_latents(self, result: Result, path: str | Path) -> Path:
        """Write ``result``'s latents, genre, seed and outline (what ``decode`` reads) atomically."""
        payload = {"latents": result.latents, "genre": result.genre, "seed": result.seed,
                   "outline": result.outline, "checkpoint": str(self.ck.path),
                   **({"time_signature": result.time_signature} if result.time_signature else {})}
        return atomic_write(path, lambda tmp: torch.save(payload, tmp))

    def variations(self, midi: MidiInput | Input, n: int = 4, amount: float = 0.3,
                   genre: GenreArg | None = None, seed: int | None = None, *,
                   options: Options | None = None, **settings) -> list[Result]:
        """``n`` variations: each window's latent moved towards fresh noise by ``amount``
        (variance kept) and decoded after the input's own past, as :meth:`transfer` decodes. 0 is
        the input itself; 1 draws every beat afresh after the input's beats before it. ``program``
        and ``velocity`` as in :meth:`compose_result`."""
        if not 0 <= amount <= 1:
            raise MusicflowError(f"amount must be between 0 and 1, got {amount}")
        o = Options.of(options, settings, "variations", _RECAST)
        inp = self.read(midi)
        seed = new_seed(seed)
        w, vec = self.genre_weights(self.genre_of(inp, genre))
        plan = self.block_outlines(inp.roll)
        z0 = self.encode(inp.roll, vec, plan, self.bar_lines(inp))
        out = []
        for i in range(n):
            eps = draw_latents(len(z0), seed + i, 1.0, self.latent_dim)[0]
            z = math.sqrt(1 - amount**2) * z0 + amount * eps
            roll = self._recast(inp.roll, z, vec, self.threshold(w), plan, self.bar_lines(inp))
            out.append(Result(self.to_midi(roll, o, -inp.shift, inp.tempo), roll, z, seed + i, w,
                              _listed(plan)))
        return out

    def transfer(self, midi: MidiInput | Input, to: GenreArg, source: GenreArg | None = None, *,
                 options: Options | None = None, **settings) -> Result:
        """The piece under another genre: each window is encoded under the piece's own genre
        (``source``, or the most likely one) given the piece's own past, and decoded under ``to``
        given the same past. Only the genre changes, so the piece keeps its beats and length and
        ``to`` = ``source`` gives the piece back exactly. (Decoding the latents one after another
        from nothing, as :meth:`decode_latents` does, loses the piece: a real piece's latents read
        under another genre after another past mostly decode to near silence.)"""
        o = Options.of(options, settings, "transfer", _RECAST)
        inp = self.read(midi)
        _, src = self.genre_weights(self.genre_of(inp, source))
        w, dst = self.genre_weights(to)
        plan = self.block_outlines(inp.roll)
        z = self.encode(inp.roll, src, plan, self.bar_lines(inp))
        roll = self._recast(inp.roll, z, dst, self.threshold(w), plan, self.bar_lines(inp))
        return Result(self.to_midi(roll, o, -inp.shift, inp.tempo), roll, z, 0, w, _listed(plan))

    @torch.no_grad()
    def _recast(self, roll: np.ndarray, latents: torch.Tensor, weights: torch.Tensor,
                threshold: float, plan: torch.Tensor | None, bars: np.ndarray | None = None) -> np.ndarray:
        """Decode one latent per window of ``roll``, each given ``roll``'s own steps before that
        window (not what was decoded before it) and its block's outline ``plan``, and join the
        windows into whole notes."""
        cond = self.condition(weights, self.windows(roll)[1], plan)
        v = self.model.decode(latents.to(cond.genre.device), cond).cpu()
        joined = np.concatenate(list((v > threshold).numpy()), axis=-1)[..., : roll.shape[-1]]
        return clean_continuation(joined[None], None)[0]

    def interpolate(self, a: MidiInput | Input, b: MidiInput | Input, steps: int = 5,
                    genre: GenreArg | None = None, *, options: Options | None = None, **settings
                    ) -> list[Result]:
        """``steps`` pieces on the spherical path between the latents of ``a`` and ``b`` (cut to
        the shorter), ``a`` and ``b`` included. A model trained with outlines reads each piece with
        its blocks' outlines and moves them in a straight line along the path."""
        if steps < 2:
            raise MusicflowError(f"steps must be at least 2, got {steps}")
        o = Options.of(options, settings, "interpolate", _RECAST)
        ia, ib = self.read(a), self.read(b)
        w, vec = self.genre_weights(self.genre_of(ia, genre))
        pa, pb = self.block_outlines(ia.roll), self.block_outlines(ib.roll)
        za = self.encode(ia.roll, vec, pa, self.bar_lines(ia))
        zb = self.encode(ib.roll, vec, pb, self.bar_lines(ib))
        k = min(len(za), len(zb))
        za, zb = za[:k], zb[:k]
        out = []
        for t in np.linspace(0, 1, steps):
            z = slerp(za, zb, float(t))
            plan = None if pa is None else torch.lerp(pa[:k], pb[:k], float(t))
            roll = self.grow(z, vec, None, self.threshold(w),
                                  outline=None if plan is None else plan[None])[0]
            out.append(Result(self.to_midi(roll, o, -ia.shift, ia.tempo), roll, z, 0, w, _listed(plan)))
        return out


def _listed(plan: torch.Tensor | None) -> list[list[float]] | None:
    """Per-window outlines as :attr:`Result.outline` holds them."""
    return None if plan is None else plan.tolist()


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation row by row; keeps latents at a typical norm (linear would shrink)."""
    na, nb = a.norm(dim=1, keepdim=True), b.norm(dim=1, keepdim=True)
    cos = ((a / na) * (b / nb)).sum(1, keepdim=True).clamp(-1, 1)
    omega = torch.acos(cos)
    so = torch.sin(omega)
    lin = (1 - t) * a + t * b
    sl = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / so.clamp_min(1e-6)
    return torch.where(so > 1e-4, sl, lin)
