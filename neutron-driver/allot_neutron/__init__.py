"""Allot as Neutron's pluggable IPAM driver (ipam_driver = allot)."""
