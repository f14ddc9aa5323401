"""
Neutron's pluggable IPAM, answered by Allot.

A Neutron subnet is an Allot pool named ``neutron-subnet-<subnet id>`` in the configured space, spanning
the subnet's CIDR; its allocation pools and gateway are kept in the pool's attributes. A subnet taken
from a Neutron subnet pool is a child pool carved by Allot from the Allot pool behind that subnet pool,
so one address plan serves Neutron and the other platforms without overlap. Each fixed IP is an Allot
allocation labelled with its port, network and device; a port's first address in a subnet is owned by
``port:<port id>``, so a request that Neutron replays after a failed attempt gets the same address back
instead of a second one.

Neutron runs the driver inside its own database transaction, which cannot roll back Allot:
``needs_rollback`` is True, and Neutron then undoes what it can by calling the driver again.
"""

from __future__ import annotations

from typing import Any, Optional

import netaddr
from neutron_lib import constants
from neutron_lib import exceptions as n_exc
from neutron_lib.db import api as db_api
from oslo_config import cfg
from oslo_log import log

from neutron._i18n import _
from neutron.ipam import driver as ipam_base
from neutron.ipam import exceptions as ipam_exc
from neutron.ipam import requests as ipam_req
from neutron.ipam import subnet_alloc
from neutron.ipam import utils as ipam_utils

from allot_neutron import config
from allot_neutron.client import AllotError, AllotUnavailable, Client, seg

LOG = log.getLogger(__name__)

config.register()

SUBNET_PREFIX = "neutron-subnet-"
SUBNETPOOL_PREFIX = "neutron-subnetpool-"
#: An Allot pool with this attribute set to a subnet pool's id or name is the one behind that subnet pool.
SUBNETPOOL_ATTRIBUTE = "neutron-subnetpool"


def client() -> Client:
    c = cfg.CONF.allot
    return Client(str(c.url), c.token, c.timeout, c.ca_file)


def _pools_to_attr(pools) -> list:
    return [[str(netaddr.IPAddress(p.first, p.version)), str(netaddr.IPAddress(p.last, p.version))] for p in pools]


def _pools_from_attr(pools) -> list:
    return [netaddr.IPRange(first, last) for first, last in pools]


class AllotSubnet(ipam_base.Subnet):
    """One Neutron subnet: an Allot pool."""

    def __init__(self, driver: "AllotPool", pool: dict):
        self._driver = driver
        self._pool = pool
        n = pool["attributes"].get("neutron", {})
        self._subnet_id = n.get("subnet_id") or pool["name"][len(SUBNET_PREFIX):]
        self._tenant_id = n.get("tenant_id")
        self._cidr = netaddr.IPNetwork(n.get("cidr") or pool["ranges"][0]["cidr"])
        self._gateway_ip = n.get("gateway_ip")
        self._allocation_pools = _pools_from_attr(n.get("allocation_pools", []))

    @property
    def _path(self) -> str:
        return "/v1/pools/" + seg(self._pool["id"])

    def _labels(self, req) -> dict:
        port = getattr(req, "allot_port", None) or {}
        labels = {"neutron-subnet": self._subnet_id}
        for key, label in (("id", "neutron-port"), ("network_id", "neutron-network"), ("device_id", "device-id"), ("device_owner", "device-owner")):
            if port.get(key):
                labels[label] = str(port[key])
        return labels

    def _post(self, body: dict, req) -> str:
        port = getattr(req, "allot_port", None) or {}
        body = dict(body, labels=self._labels(req))
        if port.get("mac_address"):
            body["mac"] = str(port["mac_address"])
        owner = body.get("owner")
        status, allocation = self._driver.client.request("POST", self._path + "/allocations", body)
        address = allocation["address"]
        if owner and status == 200 and not self._driver.replayed(self._subnet_id, port.get("id"), address):
            # the port already holds this address in Neutron: this is a second address, not a replay
            body.pop("owner")
            allocation = self._driver.client.call("POST", self._path + "/allocations", body)
            address = allocation["address"]
        self._driver.handed_out.add((self._subnet_id, address))
        return address

    def allocate(self, address_request):
        port = getattr(address_request, "allot_port", None) or {}
        port_id = port.get("id")
        try:
            if isinstance(address_request, ipam_req.SpecificAddressRequest):
                ip = str(address_request.address)
                if not ipam_utils.check_subnet_ip(self._cidr, ip, port.get("device_owner") or ""):
                    raise ipam_exc.InvalidIpForSubnet(subnet_id=self._subnet_id, ip=ip)
                owner = {"owner": "port:%s@%s" % (port_id, ip)} if port_id else {}
                return self._post(dict(address=ip, **owner), address_request)
            owner = {"owner": "port:%s" % port_id} if port_id else {}
            for r in self._allocation_pools:
                within = {"start": str(netaddr.IPAddress(r.first, r.version)), "end": str(netaddr.IPAddress(r.last, r.version))}
                try:
                    return self._post(dict(within=within, **owner), address_request)
                except AllotError as e:
                    if e.code != "pool-exhausted":
                        raise
            raise ipam_exc.IpAddressGenerationFailure(subnet_id=self._subnet_id)
        except AllotError as e:
            if e.code in ("address-unavailable", "owner-conflict"):
                raise ipam_exc.IpAddressAlreadyAllocated(subnet_id=self._subnet_id, ip=str(getattr(address_request, "address", "")))
            if e.code == "address-outside-pool":
                raise ipam_exc.InvalidIpForSubnet(subnet_id=self._subnet_id, ip=str(getattr(address_request, "address", "")))
            if e.code == "pool-not-found":
                raise n_exc.SubnetNotFound(subnet_id=self._subnet_id)
            raise _unexpected(e)

    def deallocate(self, address):
        try:
            self._driver.client.request("DELETE", self._path + "/allocations", params={"address": str(address)})
        except AllotError as e:
            # already free, as the reference driver allows
            if e.code not in ("allocation-not-found", "pool-not-found"):
                raise _unexpected(e)

    def get_details(self):
        gateway = self._gateway_ip
        return ipam_req.SpecificSubnetRequest(self._tenant_id, self._subnet_id, self._cidr, gateway, self._allocation_pools)

    def update(self, request) -> None:
        """Keeps the allocation pools and gateway Neutron has now (a gateway of None means unchanged)."""
        n = dict(self._pool["attributes"].get("neutron", {}))
        if request.allocation_pools is not None:
            n["allocation_pools"] = _pools_to_attr(request.allocation_pools)
            self._allocation_pools = list(request.allocation_pools)
        if request.gateway_ip is not None:
            n["gateway_ip"] = str(request.gateway_ip)
            self._gateway_ip = n["gateway_ip"]
        attributes = dict(self._pool["attributes"], neutron=n)
        try:
            self._pool = self._driver.client.call("PATCH", self._path, {"attributes": attributes})
        except AllotError as e:
            if e.code == "pool-not-found":
                raise n_exc.SubnetNotFound(subnet_id=self._subnet_id)
            raise _unexpected(e)


class AllotAddressRequestFactory(ipam_req.AddressRequestFactory):
    """Neutron's requests, with the port they are for: Allot labels addresses with it and keys replays on it."""

    @classmethod
    def get_request(cls, context, port, ip_dict):
        req = super().get_request(context, port, ip_dict)
        if isinstance(port, dict):
            info = {k: port.get(k) for k in ("id", "network_id", "device_id", "device_owner", "mac_address")}
        else:  # a Port object (automatic addresses for the ports already on a new SLAAC subnet)
            info = {k: getattr(port, k, None) for k in ("id", "network_id", "device_id", "device_owner", "mac_address")}
        info = {k: v for k, v in info.items() if v is not None and v is not constants.ATTR_NOT_SPECIFIED}
        req.allot_port = info
        return req


class AllotPool(subnet_alloc.SubnetAllocator):
    """The driver Neutron loads (entry point ``allot`` in ``neutron.ipam_drivers``); one instance per operation.

    It extends Neutron's subnet allocator only for the checks Neutron itself makes on a subnet pool (prefix
    length bounds, the project's quota, the pool's lock); which prefix a subnet gets is Allot's choice.
    """

    def __init__(self, subnetpool, context):
        super().__init__(subnetpool, context)
        self.client = client()
        self.space = cfg.CONF.allot.space
        # addresses this operation has handed out, to tell a replay from a second address for one port
        self.handed_out: set = set()

    def needs_rollback(self):
        return True

    def get_address_request_factory(self):
        return AllotAddressRequestFactory

    def replayed(self, subnet_id: str, port_id: Optional[str], address: str) -> bool:
        """Whether an address Allot already had for this port is one Neutron does not know it holds."""
        if (subnet_id, address) in self.handed_out:
            return False
        if not port_id:
            return True
        from neutron.objects import ports as port_obj  # only inside neutron-server

        known = port_obj.IPAllocation.get_objects(self._context, port_id=port_id, subnet_id=subnet_id)
        return all(str(a.ip_address) != str(netaddr.IPAddress(address)) for a in known)

    # -- subnets -------------------------------------------------------------------------------------

    def _find(self, subnet_id: str) -> dict:
        try:
            pool = self.client.call("GET", "/v1/pools/" + seg(SUBNET_PREFIX + subnet_id), params={"space": self.space})
            return pool
        except AllotError as e:
            if e.code in ("pool-not-found", "space-not-found"):
                raise n_exc.SubnetNotFound(subnet_id=subnet_id)
            raise _unexpected(e)

    def get_subnet(self, subnet_id):
        return AllotSubnet(self, self._find(subnet_id))

    def allocate_subnet(self, subnet_request):
        if self._subnetpool:
            # Neutron's own checks of the request against the subnet pool (bounds, quota), then Allot carves
            pool = self._carve(subnet_request)
        else:
            if not isinstance(subnet_request, ipam_req.SpecificSubnetRequest):
                raise ipam_exc.InvalidSubnetRequestType(subnet_type=type(subnet_request))
            pool = self._create(subnet_request)
        return AllotSubnet(self, pool)

    @staticmethod
    def _neutron_attributes(request, cidr, gateway, pools) -> dict:
        return {
            "neutron": {
                "subnet_id": request.subnet_id,
                "tenant_id": request.tenant_id,
                "cidr": str(cidr),
                "gateway_ip": str(gateway) if gateway is not None else None,
                "allocation_pools": _pools_to_attr(pools),
            }
        }

    def _create(self, request) -> dict:
        cidr = request.subnet_cidr
        pools = request.allocation_pools or ipam_utils.generate_pools(cidr, request.gateway_ip)
        body = {
            "name": SUBNET_PREFIX + request.subnet_id,
            "space": self.space,
            "cidr": str(cidr),
            # Neutron decides which addresses are usable (a router may take the network address on IPv6,
            # a port its gateway): Allot keeps nothing back
            "allocateReserved": True,
            "description": "Neutron subnet %s" % request.subnet_id,
            "attributes": self._neutron_attributes(request, cidr, request.gateway_ip, pools),
        }
        try:
            pool = self.client.call("POST", "/v1/pools", body)
            return pool
        except AllotError as e:
            if e.code == "pool-exists":
                # Neutron replayed the request: the pool made the first time is this subnet's
                return self._find(request.subnet_id)
            if e.code == "pool-overlap":
                raise n_exc.InvalidInput(error_message=_("Allot refused subnet %(cidr)s: %(reason)s") % {"cidr": cidr, "reason": e.detail})
            if e.code == "space-not-found":
                raise AllotUnavailable(url=self.client.url, reason=_("the space %s does not exist: create it in Allot ([allot] space)") % self.space)
            raise _unexpected(e)

    def _parent(self) -> dict:
        """The Allot pool behind this subnet pool: one marked for it, one of its name, or one made from its prefixes."""
        sp = self._subnetpool
        listing = self.client.call("GET", "/v1/pools", params={"space": self.space})
        pools = listing["items"]
        for p in pools:
            if str(p.get("attributes", {}).get(SUBNETPOOL_ATTRIBUTE, "")) in (sp["id"], sp.get("name") or sp["id"]):
                return p
        for name in ([sp["name"]] if sp.get("name") else []) + [SUBNETPOOL_PREFIX + sp["id"]]:
            for p in pools:
                if p["name"] == name and p["parent"] is None:
                    return p
        body = {
            "name": SUBNETPOOL_PREFIX + sp["id"],
            "space": self.space,
            "ranges": [{"cidr": str(p.cidr if hasattr(p, "cidr") else p)} for p in sp["prefixes"]],
            "description": "Neutron subnet pool %s" % (sp.get("name") or sp["id"]),
            "attributes": {SUBNETPOOL_ATTRIBUTE: sp["id"]},
        }
        try:
            pool = self.client.call("POST", "/v1/pools", body)
            return pool
        except AllotError as e:
            if e.code == "pool-exists":
                return self._parent()
            if e.code == "pool-overlap":
                raise n_exc.SubnetAllocationError(reason=_("Allot cannot hold subnet pool %(id)s's prefixes: %(reason)s") % {"id": sp["id"], "reason": e.detail})
            raise _unexpected(e)

    def _carve(self, request) -> dict:
        max_len = int(self._subnetpool["max_prefixlen"])
        min_len = int(self._subnetpool["min_prefixlen"])
        if request.prefixlen > max_len:
            raise n_exc.MaxPrefixSubnetAllocationError(prefixlen=request.prefixlen, max_prefixlen=max_len)
        if request.prefixlen < min_len:
            raise n_exc.MinPrefixSubnetAllocationError(prefixlen=request.prefixlen, min_prefixlen=min_len)
        with db_api.CONTEXT_WRITER.using(self._context):
            self._lock_subnetpool()
            self._check_subnetpool_tenant_quota(request.tenant_id, request.prefixlen)
        parent = self._parent()
        body: dict[str, Any] = {"name": SUBNET_PREFIX + request.subnet_id, "allocateReserved": True, "description": "Neutron subnet %s" % request.subnet_id}
        if isinstance(request, ipam_req.AnySubnetRequest):
            body["prefixLength"] = request.prefixlen
        elif isinstance(request, ipam_req.SpecificSubnetRequest):
            body["cidr"] = str(request.subnet_cidr)
        else:
            raise n_exc.SubnetAllocationError(reason=_("Unsupported request type"))
        try:
            pool = self.client.call("POST", "/v1/pools/%s/children" % seg(parent["id"]), body)
        except AllotError as e:
            if e.code == "pool-exists":
                return self._find(request.subnet_id)
            if e.code in ("block-unavailable", "pool-overlap", "invalid-range", "pool-exhausted", "address-outside-pool"):
                raise n_exc.SubnetAllocationError(reason=_("Allot: %s") % e.detail)
            raise _unexpected(e)
        cidr = netaddr.IPNetwork(pool["ranges"][0]["cidr"])
        if isinstance(request, ipam_req.AnySubnetRequest):
            gateway = request.gateway_ip or netaddr.IPAddress(cidr.first + 1, cidr.version)
            pools = ipam_utils.generate_pools(cidr, gateway)
        else:
            gateway = request.gateway_ip
            pools = request.allocation_pools or ipam_utils.generate_pools(cidr, gateway)
        attributes = self._neutron_attributes(request, cidr, gateway, pools)
        pool = self.client.call("PATCH", "/v1/pools/" + seg(pool["id"]), {"attributes": attributes})
        return pool

    def update_subnet(self, subnet_request):
        if not subnet_request.subnet_id:
            raise ipam_exc.InvalidSubnetRequest(reason=_("An identifier must be specified when updating a subnet"))
        subnet = self.get_subnet(subnet_request.subnet_id)
        subnet.update(subnet_request)
        return subnet

    def remove_subnet(self, subnet_id):
        """Deletes the subnet's pool with every address in it (Neutron frees automatic addresses no other way)."""
        pool = self._find(subnet_id)
        try:
            self.client.request("DELETE", "/v1/pools/" + seg(pool["id"]), params={"force": "true"})
        except AllotError as e:
            if e.code == "pool-not-found":
                raise n_exc.SubnetNotFound(subnet_id=subnet_id)
            raise _unexpected(e)

    def get_allocator(self, subnet_ids):
        return subnet_alloc.IpamSubnetGroup(self, subnet_ids)


def _unexpected(e: AllotError) -> Exception:
    LOG.error("Allot refused an IPAM request: %s (%s)", e.detail, e.code)
    return n_exc.BadRequest(resource="ipam", msg=_("Allot: %s") % e.detail)
