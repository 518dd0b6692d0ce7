"""The old name of ``tinynet.networks`` (the builders of the networks tinynet ships), kept so
that ``from tinynet import models`` and ``models.BUILDERS`` keep working."""

from .networks import *  # noqa: F401,F403
