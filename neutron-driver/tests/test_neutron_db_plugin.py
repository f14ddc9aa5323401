"""
Neutron's own API-level DB plugin tests (networks, subnets, ports, subnet pools), run with
``ipam_driver = allot`` against a real Allot server: ALLOT_URL and ALLOT_TOKEN (an admin token, to
make a fresh space for each test) name it.
"""

import os
import uuid

import requests
from oslo_config import cfg

from neutron.tests.unit.db import test_db_base_plugin_v2 as base

from allot_neutron import config

URL = os.environ.get("ALLOT_URL", "http://127.0.0.1:7878")
TOKEN = os.environ.get("ALLOT_TOKEN", "")


class AllotIpam:
    def setUp(self):
        super().setUp()
        config.register()
        # a space of its own for each test: Neutron's database is new for each test, so must Allot's plan be
        space = "t-" + uuid.uuid4().hex[:12]
        r = requests.post(URL + "/v1/spaces", json={"name": space}, headers={"Authorization": "Bearer " + TOKEN}, timeout=30)
        r.raise_for_status()
        cfg.CONF.set_override("ipam_driver", "allot")
        cfg.CONF.set_override("url", URL, group="allot")
        cfg.CONF.set_override("token", TOKEN, group="allot")
        cfg.CONF.set_override("space", space, group="allot")
        cfg.CONF.set_override("timeout", 30, group="allot")


class TestNetworksAllot(AllotIpam, base.TestNetworksV2):
    pass


class TestSubnetsAllot(AllotIpam, base.TestSubnetsV2):
    pass


class TestPortsAllot(AllotIpam, base.TestPortsV2):
    pass


class TestSubnetPoolsAllot(AllotIpam, base.TestSubnetPoolsV2):
    pass
