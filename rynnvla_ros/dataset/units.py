"""Explicit joint unit conversion from the radians of ROS messages to the unit a dataset stores.

``deg`` matches LeRobot's SO100/SO101 recordings (``use_degrees=True``) for the arm joints; their gripper is a
0-100 percentage of its calibrated range, which :class:`JointUnits` reproduces when given the gripper joint and its
range in radians (``gripper_range``: the positions that map to 0 and 100).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

UNITS = ("rad", "deg")


@dataclass(frozen=True)
class JointUnits:
    """Conversion of joint vectors (radians, in the order of ``names``) to the dataset's units."""

    unit: str = "deg"
    gripper_joint: str | None = None
    gripper_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}, got {self.unit!r}")
        if (self.gripper_joint is None) != (self.gripper_range is None):
            raise ValueError("gripper_joint and gripper_range go together (the range maps the gripper to 0-100)")
        if self.gripper_range is not None and self.gripper_range[0] == self.gripper_range[1]:
            raise ValueError(f"gripper_range needs two different positions, got {self.gripper_range}")

    def units_of(self, names: list[str]) -> list[str]:
        """Unit of each dimension."""
        return ["percent" if n == self.gripper_joint else self.unit for n in names]

    def convert(self, radians: np.ndarray, names: list[str], delta: bool = False) -> np.ndarray:
        """``radians`` (..., len(names)) in the dataset's units, as float32; ``delta``: differences (no offset)."""
        arr = np.asarray(radians, dtype=np.float64)
        out = np.degrees(arr) if self.unit == "deg" else arr.copy()
        if self.gripper_joint is not None and self.gripper_joint in names:
            i = names.index(self.gripper_joint)
            lo, hi = self.gripper_range  # type: ignore[misc]
            out[..., i] = (arr[..., i] - (0.0 if delta else lo)) / (hi - lo) * 100.0
        return out.astype(np.float32)

    def info(self, names: list[str]) -> dict[str, Any]:
        """What a dataset records about its units (stored in the feature's ``info``)."""
        info: dict[str, Any] = {"source_unit": "rad", "unit": self.unit, "units": self.units_of(names)}
        if self.gripper_joint is not None:
            info["gripper"] = {"joint": self.gripper_joint, "range_rad": list(self.gripper_range or ())}
        return info
