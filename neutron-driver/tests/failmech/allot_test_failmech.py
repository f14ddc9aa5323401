"""Fails the ML2 pre-commit of a port named fail-precommit (a test of what Neutron then leaves behind)."""

from neutron_lib import exceptions
from neutron_lib.plugins.ml2 import api


class FailPrecommit(api.MechanismDriver):
    def initialize(self):
        pass

    def create_port_precommit(self, context):
        if context.current.get("name") == "fail-precommit":
            raise exceptions.InvalidInput(error_message="test mechanism driver: pre-commit refused")
