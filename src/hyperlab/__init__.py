"""hyperlab: the course's deep-learning tasks as config-driven Lightning experiments."""

__version__ = "0.1.0"
