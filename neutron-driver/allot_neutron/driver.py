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
from oslo_db import exception as db_exc
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
        # a pool carved for an any-subnet request gets its pools recorded after the carve: until then
        # (or if that failed) they are Neutron's defaults for the CIDR and gateway
        pools = n.get("allocation_pools")
        self._allocation_pools = _pools_from_attr(pools) if pools is not None else list(ipam_utils.generate_pools(self._cidr, self._gateway_ip))

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
        return self._driver.client.call("POST", self._path + "/allocations", body)["address"]

    def _pick(self, req, owner: Optional[str]) -> str:
        """The lowest free address of the allocation pools, in their order."""
        for r in self._allocation_pools:
            within = {"start": str(netaddr.IPAddress(r.first, r.version)), "end": str(netaddr.IPAddress(r.last, r.version))}
            try:
                return self._post(dict(within=within, **({"owner": owner} if owner else {})), req)
            except AllotError as e:
                if e.code != "pool-exhausted":
                    raise
        raise ipam_exc.IpAddressGenerationFailure(subnet_id=self._subnet_id)

    def allocate(self, address_request):
        port = getattr(address_request, "allot_port", None) or {}
        port_id = port.get("id")
        try:
            if isinstance(address_request, ipam_req.SpecificAddressRequest):
                ip = str(address_request.address)
                if not ipam_utils.check_subnet_ip(self._cidr, ip, port.get("device_owner") or ""):
                    raise ipam_exc.InvalidIpForSubnet(subnet_id=self._subnet_id, ip=ip)
                address = self._post(dict(address=ip, **({"owner": "port:%s@%s" % (port_id, ip)} if port_id else {})), address_request)
            elif not port_id:
                address = self._pick(address_request, None)
            else:
                address = self._pick_for_port(address_request, port_id)
        except AllotError as e:
            if e.code in ("address-unavailable", "owner-conflict"):
                raise ipam_exc.IpAddressAlreadyAllocated(subnet_id=self._subnet_id, ip=str(getattr(address_request, "address", "")))
            if e.code == "address-outside-pool":
                raise ipam_exc.InvalidIpForSubnet(subnet_id=self._subnet_id, ip=str(getattr(address_request, "address", "")))
            if e.code == "pool-not-found":
                raise n_exc.SubnetNotFound(subnet_id=self._subnet_id)
            raise _unexpected(e)
        self._driver.handed_out.add((self._subnet_id, port_id, str(netaddr.IPAddress(address))))
        return address

    def _pick_for_port(self, req, port_id: str) -> str:
        """
        The k-th picked address of a port in this subnet is owned by ``port:<id>`` (k = 0) or
        ``port:<id>#k``, k counting the addresses Neutron records for the port here and those this
        operation handed out. A replay asks for the same k and gets the same address back; an owner
        whose address Neutron already has (an earlier one was freed) moves on to the next k.
        """
        taken = self._driver.known_addresses(self._subnet_id, port_id) | {a for s, p, a in self._driver.handed_out if s == self._subnet_id and p == port_id}
        first = len(taken)
        for k in range(first, first + 8):
            address = self._pick(req, "port:%s" % port_id if k == 0 else "port:%s#%d" % (port_id, k))
            if str(netaddr.IPAddress(address)) not in taken:
                return address
        raise ipam_exc.IpAddressGenerationFailure(subnet_id=self._subnet_id)

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
        cidr = getattr(request, "subnet_cidr", None)
        if cidr is not None and netaddr.IPNetwork(cidr) != self._cidr:
            # prefix delegation: the provisional ::/64 became the delegated prefix
            self._pool = self._driver.move_subnet(self, request)
            self._cidr = netaddr.IPNetwork(cidr)
        n = dict(self._pool["attributes"].get("neutron", {}), cidr=str(self._cidr))
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
        # (subnet, port, address) this operation has handed out: a port asking twice in one request gets two
        self.handed_out: set = set()

    def needs_rollback(self):
        return True

    def get_address_request_factory(self):
        return AllotAddressRequestFactory

    def known_addresses(self, subnet_id: str, port_id: str) -> set:
        """The addresses Neutron's database records for this port in this subnet."""
        from neutron.objects import ports as port_obj  # only inside neutron-server

        known = port_obj.IPAllocation.get_objects(self._context, port_id=port_id, subnet_id=subnet_id)
        return {str(netaddr.IPAddress(str(a.ip_address))) for a in known}

    # -- subnets -------------------------------------------------------------------------------------

    def _missing_space(self) -> AllotUnavailable:
        LOG.error("The Allot space %s does not exist: create it in Allot, or set [allot] space", self.space)
        return AllotUnavailable(reason=_("its space for Neutron is missing"))

    def _find(self, subnet_id: str) -> dict:
        try:
            return self.client.call("GET", "/v1/pools/" + seg(SUBNET_PREFIX + subnet_id), params={"space": self.space})
        except AllotError as e:
            if e.code == "pool-not-found":
                raise n_exc.SubnetNotFound(subnet_id=subnet_id)
            if e.code == "space-not-found":
                raise self._missing_space()
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
    def _neutron_attributes(request, cidr=None, gateway=None, pools=None) -> dict:
        """What Neutron knows of a subnet and Allot keeps for it: pools and gateway once the CIDR is known."""
        n: dict[str, Any] = {"subnet_id": request.subnet_id, "tenant_id": request.tenant_id}
        if cidr is not None:
            n.update(cidr=str(cidr), gateway_ip=str(gateway) if gateway is not None else None, allocation_pools=_pools_to_attr(pools))
        return {"neutron": n}

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
            return self.client.call("POST", "/v1/pools", body)
        except AllotError as e:
            if e.code == "pool-exists":
                # Neutron replayed the request: the pool made the first time is this subnet's
                return self._find(request.subnet_id)
            if e.code == "pool-overlap":
                LOG.warning("Allot refused subnet %s (%s): %s", request.subnet_id, cidr, e.detail)
                raise n_exc.InvalidInput(error_message=_("Allot refused subnet %s: it overlaps another subnet") % cidr)
            if e.code == "space-not-found":
                raise self._missing_space()
            raise _unexpected(e)

    def _pools(self) -> list:
        try:
            return self.client.call("GET", "/v1/pools", params={"space": self.space})["items"]
        except AllotError as e:
            if e.code == "space-not-found":
                raise self._missing_space()
            raise _unexpected(e)

    def _parent(self) -> dict:
        """
        The Allot pool behind this subnet pool: one whose attribute ``neutron-subnetpool`` is the subnet
        pool's id; for a shared subnet pool (an operator's), also one marked with its name or named like
        it; else one made from its prefixes. A mapped pool must lie inside the subnet pool's prefixes, so
        a project cannot reach an operator's pool or another subnet by how it names its subnet pool.
        """
        sp = self._subnetpool
        prefixes = netaddr.IPSet([str(p.cidr if hasattr(p, "cidr") else p) for p in sp["prefixes"]])
        shared_name = sp.get("name") if sp.get("shared") else None
        for p in self._pools():
            if p["parent"] is not None or p["name"].startswith((SUBNET_PREFIX, SUBNETPOOL_PREFIX)):
                continue
            mark = str(p.get("attributes", {}).get(SUBNETPOOL_ATTRIBUTE, ""))
            if mark == sp["id"] or (shared_name and shared_name in (mark, p["name"])):
                inside = all(prefixes.issuperset(netaddr.IPSet(netaddr.IPRange(r["start"], r["end"]))) for r in p["ranges"])
                if not inside:
                    raise n_exc.SubnetAllocationError(reason=_("the Allot pool %s mapped to this subnet pool is not inside its prefixes") % p["name"])
                return p
        name = SUBNETPOOL_PREFIX + sp["id"]
        body = {
            "name": name,
            "space": self.space,
            "ranges": [{"cidr": str(c)} for c in prefixes.iter_cidrs()],
            "description": "Neutron subnet pool %s" % (sp.get("name") or sp["id"]),
            "attributes": {SUBNETPOOL_ATTRIBUTE: sp["id"]},
        }
        try:
            return self.client.call("POST", "/v1/pools", body)
        except AllotError as e:
            if e.code == "pool-exists":
                # made meanwhile by another request for the same subnet pool
                return self.client.call("GET", "/v1/pools/" + seg(name), params={"space": self.space})
            if e.code == "pool-overlap":
                LOG.warning("Allot cannot hold subnet pool %s: %s", sp["id"], e.detail)
                raise n_exc.SubnetAllocationError(reason=_("Allot cannot hold this subnet pool's prefixes: they overlap another subnet or subnet pool"))
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
            # the CIDR is Allot's pick: pools and gateway are recorded below, Neutron's defaults until then
            body["attributes"] = self._neutron_attributes(request)
        elif isinstance(request, ipam_req.SpecificSubnetRequest):
            cidr = request.subnet_cidr
            body["cidr"] = str(cidr)
            body["attributes"] = self._neutron_attributes(request, cidr, request.gateway_ip, request.allocation_pools or ipam_utils.generate_pools(cidr, request.gateway_ip))
        else:
            raise n_exc.SubnetAllocationError(reason=_("Unsupported request type"))
        try:
            pool = self.client.call("POST", "/v1/pools/%s/children" % seg(parent["id"]), body)
        except AllotError as e:
            if e.code == "pool-exists":
                return self._find(request.subnet_id)
            if e.code in ("block-unavailable", "pool-overlap", "invalid-range", "pool-exhausted", "address-outside-pool"):
                LOG.info("Allot cannot carve subnet %s: %s", request.subnet_id, e.detail)
                raise n_exc.SubnetAllocationError(reason=_("Allot: %s") % e.detail)
            raise _unexpected(e)
        if isinstance(request, ipam_req.AnySubnetRequest):
            cidr = netaddr.IPNetwork(pool["ranges"][0]["cidr"])
            gateway = request.gateway_ip or netaddr.IPAddress(cidr.first + 1, cidr.version)
            attributes = self._neutron_attributes(request, cidr, gateway, ipam_utils.generate_pools(cidr, gateway))
            try:
                pool = self.client.call("PATCH", "/v1/pools/" + seg(pool["id"]), {"attributes": attributes})
            except AllotError as e:
                raise _unexpected(e)
        return pool

    def move_subnet(self, subnet: "AllotSubnet", request) -> dict:
        """A subnet whose CIDR changes (prefix delegation): its pool is made again at the new CIDR."""
        self.remove_subnet(subnet._subnet_id)
        return self._create(request)

    def update_subnet(self, subnet_request):
        if not subnet_request.subnet_id:
            raise ipam_exc.InvalidSubnetRequest(reason=_("An identifier must be specified when updating a subnet"))
        subnet = self.get_subnet(subnet_request.subnet_id)
        subnet.update(subnet_request)
        return subnet

    def remove_subnet(self, subnet_id):
        """Deletes the subnet's pool with every address in it (Neutron frees automatic addresses no other way)."""
        try:
            pool = self._find(subnet_id)
            self.client.request("DELETE", "/v1/pools/" + seg(pool["id"]), params={"force": "true"})
        except (n_exc.SubnetNotFound, AllotError) as e:
            if isinstance(e, AllotError) and e.code != "pool-not-found":
                raise _unexpected(e)
            # gone already (a reconcile, an earlier attempt): the subnet can still be deleted in Neutron
            LOG.warning("Allot holds no pool for subnet %s; nothing to remove", subnet_id)

    def get_allocator(self, subnet_ids):
        return subnet_alloc.IpamSubnetGroup(self, subnet_ids)


def _unexpected(e: AllotError) -> Exception:
    if e.code == "conflict":
        # Allot's "retry": Neutron's own retry replays the request, which the owner keys make safe
        return db_exc.RetryRequest(e)
    if e.code == "rate-limited":
        LOG.error("Allot is rate-limiting the driver's token: %s", e.detail)
        return AllotUnavailable(reason=_("too many requests"))
    LOG.error("Allot refused an IPAM request: %s (%s)", e.detail, e.code)
    return n_exc.BadRequest(resource="ipam", msg=_("Allot refused the request (%s); the log says why") % e.code)
