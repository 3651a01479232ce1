"""What one tile costs in device memory, measured by running it on the meta device.

Meta tensors carry shapes and no data, so a forward pass there takes milliseconds whatever
the tile size. A dispatch mode sees every tensor each operation creates; weak references
tell when one is freed, so the peak of live bytes is what the device's allocator would have
to hold at once. Left out, and covered by the share of free memory that tiles may plan for:
the allocator's own rounding and fragmentation, and cuDNN workspaces.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

META = torch.device("meta")
# Input side of the tile the cost is measured on; the cost per pixel does not depend on it.
PROBE_TILE_PX = 64


class LiveBytes(TorchDispatchMode):
    """Tracks the bytes of tensors alive on one device type while the mode is active."""

    def __init__(self, device_type: str = "meta") -> None:
        super().__init__()
        self.device_type = device_type
        self.peak = 0
        self._live: dict[int, tuple[StorageWeakRef, int]] = {}

    def __torch_dispatch__(
        self,
        func: Any,  # noqa: ANN401 - an OpOverload
        types: tuple[type, ...],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:  # noqa: ANN401
        out = func(*args, **(kwargs or {}))
        # Forget freed storages first: a new one may take a freed one's address.
        for key in [key for key, (ref, _) in self._live.items() if ref.expired()]:
            del self._live[key]
        for tensor in tree_leaves(out):
            if isinstance(tensor, torch.Tensor) and tensor.device.type == self.device_type:
                storage = tensor.untyped_storage()
                ref = StorageWeakRef(storage)
                self._live.setdefault(ref.cdata, (ref, storage.nbytes()))
        self.peak = max(self.peak, sum(size for _, size in self._live.values()))
        return out


def peak_bytes(run: Callable[[], object], device_type: str = "meta") -> int:
    """Peak bytes of tensors created by `run` and alive together on `device_type`."""
    with torch.inference_mode(), LiveBytes(device_type) as live:
        run()
    return live.peak
