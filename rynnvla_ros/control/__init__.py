"""ROS-free core of the ``so100_controller`` node: arm description, chunk scheduling, safety and arm back-ends.

Importing it defaults ``MUJOCO_GL`` to ``egl`` (headless rendering; MuJoCo reads it when first imported).
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
