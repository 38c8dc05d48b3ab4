"""Random draws that honour a generator on any device.

Training and sampling seed one CPU :class:`torch.Generator` (its state is what a resumed run
restores), while the model may live on a GPU. Torch refuses a CPU generator for a draw made on a
CUDA device, so every draw in the flows goes through :func:`draw`: the numbers are drawn on the
generator's own device and then moved. A seed therefore gives the same noise on CPU and GPU.
"""

from __future__ import annotations

import torch


def draw(fn, *args, generator: torch.Generator | None, device: torch.device | str,
         dtype: torch.dtype | None = None) -> torch.Tensor:
    """``fn(*args)`` (``torch.rand``, ``torch.randn``, ``torch.randint``) drawn from ``generator``
    on its device and placed on ``device``; without a generator, drawn on ``device`` directly.

    >>> gen = torch.Generator().manual_seed(0)
    >>> draw(torch.randn, (2, 3), generator=gen, device="meta").device.type
    'meta'
    """
    where = generator.device if generator is not None else device
    kw = {} if dtype is None else {"dtype": dtype}
    return fn(*args, generator=generator, device=where, **kw).to(device)
