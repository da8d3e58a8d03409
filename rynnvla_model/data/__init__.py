"""Training data: LeRobot v3 datasets (reading, writing, statistics) and the LIBERO demonstration converter.

Nothing in this package imports ROS.
"""
