"""ROS-free core of the ``policy`` and ``world_model`` nodes.

:mod:`.robot_io` maps joint states (radians) to the model's state/action vectors and back, :mod:`.history` keeps
recent camera frames and picks the model's history, :mod:`.observation` assembles and gates observations,
:mod:`.worker` runs inference on its own thread on the newest observation only, :mod:`.stats` measures latency and
:mod:`.model_cache` loads a checkpoint once per process.
"""
