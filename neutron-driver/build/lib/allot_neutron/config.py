"""The [allot] section of neutron.conf."""

from oslo_config import cfg

GROUP = "allot"

OPTS = [
    cfg.URIOpt("url", default="http://127.0.0.1:7878", schemes=["http", "https"], help="The Allot server's base URL."),
    # secret: oslo.config masks it when it logs the configuration
    cfg.StrOpt("token", secret=True, help="An Allot token with write scope in the space below."),
    cfg.StrOpt("space", default="neutron", help="The Allot space that holds Neutron's subnets and subnet pools."),
    cfg.StrOpt("ca_file", help="A PEM file of certificates to trust for an https url, besides the system's."),
    cfg.FloatOpt("timeout", default=10.0, min=0.1, max=120.0, help="Seconds to wait for each Allot request."),
]


def register(conf: cfg.ConfigOpts = cfg.CONF) -> cfg.ConfigOpts:
    conf.register_opts(OPTS, group=GROUP)
    return conf


def list_opts():
    """For oslo-config-generator."""
    return [(GROUP, OPTS)]
