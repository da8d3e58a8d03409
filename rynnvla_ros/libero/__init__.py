"""LIBERO in the loop: the official evaluation protocol, the simulator wrapper, episodes and the evaluation harness.

ROS-free except :mod:`rynnvla_ros.libero.evaluate`, which drives the ROS graph (``libero_bridge`` + ``policy``).
"""
