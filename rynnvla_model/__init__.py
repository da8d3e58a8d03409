"""rynnvla_model: RynnVLA-002 (a unified vision-language-action policy and action world model) in PyTorch.

Nothing in this package imports ROS.
"""
