"""The names charts are asked for by, in a module of their own: `charts` (the light front
door) and `vega` (the heavy builder it imports on first use) both need them, and neither
may import the other at load time."""

from typing import Literal

ChartKind = Literal["composition", "likert", "themes", "compare"]
ImageFormat = Literal["svg", "png"]
