"""The Real-ESRGAN networks, defined here so the official `.pth` files load without the
unmaintained `realesrgan`/`basicsr` packages."""

from engine.enhance.arch.rrdbnet import RRDBNet
from engine.enhance.arch.srvgg import SRVGGNetCompact

__all__ = ["RRDBNet", "SRVGGNetCompact"]
