"""
Neutron replays a whole request when its retry decorators fire (deadlock, stale data) and does not undo
the IPAM allocations of an attempt that an ML2 pre-commit failed. The driver keys a port's first address
in a subnet on the port, so a replay gets the same address back instead of holding a second one.
"""

import requests
from neutron_lib import context
from oslo_config import cfg

from neutron.ipam import driver as ipam_driver
from neutron.tests.unit.db import test_db_base_plugin_v2 as base

from tests.test_neutron_db_plugin import TOKEN, URL, AllotIpam


class TestReplay(AllotIpam, base.NeutronDbPluginV2TestCase):
    def _allocations(self, subnet_id):
        r = requests.get(
            URL + "/v1/pools/neutron-subnet-%s/allocations" % subnet_id,
            params={"space": cfg.CONF.allot.space},
            headers={"Authorization": "Bearer " + TOKEN},
            timeout=30,
        )
        r.raise_for_status()
        return [(a["address"], a["owner"]) for a in r.json()["items"]]

    def _allocate(self, ctx, subnet_id, port):
        # a new driver instance for each attempt, as Neutron makes one per operation
        pool = ipam_driver.Pool.get_instance(None, ctx)
        request = pool.get_address_request_factory().get_request(ctx, port, {"subnet_id": subnet_id})
        return pool.get_subnet(subnet_id).allocate(request)

    def test_a_replayed_allocation_gets_the_same_address(self):
        with self.subnet(cidr="10.90.0.0/24") as subnet:
            subnet_id = subnet["subnet"]["id"]
            ctx = context.get_admin_context()
            port = {"id": "6d1b0a4e-0000-4000-8000-00000000aaaa", "network_id": subnet["subnet"]["network_id"], "device_owner": "compute:nova", "device_id": "vm-1", "mac_address": "fa:16:3e:00:00:01"}
            first = self._allocate(ctx, subnet_id, port)
            # Neutron's transaction rolled back: it has no port, and replays the request
            again = self._allocate(ctx, subnet_id, port)
            self.assertEqual(first, again)
            self.assertEqual([(first, "port:" + port["id"])], self._allocations(subnet_id))
            # another port gets another address
            other = self._allocate(ctx, subnet_id, dict(port, id="6d1b0a4e-0000-4000-8000-00000000bbbb"))
            self.assertNotEqual(first, other)
            self.assertEqual(2, len(self._allocations(subnet_id)))

    def test_a_second_address_of_a_port_neutron_knows_is_a_new_one(self):
        with self.subnet(cidr="10.91.0.0/24") as subnet:
            with self.port(subnet=subnet) as port:
                ctx = context.get_admin_context()
                known = port["port"]["fixed_ips"][0]["ip_address"]
                second = self._allocate(ctx, subnet["subnet"]["id"], port["port"])
                self.assertNotEqual(known, second)
                # that second address replayed (Neutron never recorded it) is the same one again
                self.assertEqual(second, self._allocate(ctx, subnet["subnet"]["id"], port["port"]))
                self.assertEqual(2, len(self._allocations(subnet["subnet"]["id"])))
