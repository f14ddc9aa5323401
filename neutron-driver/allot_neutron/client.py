"""A small client for the Allot HTTP API: the driver's only way to decide anything."""

from __future__ import annotations

from typing import Any, Optional
from urllib.parse import quote

import requests
from neutron_lib import exceptions as n_exc

from neutron._i18n import _
from oslo_log import log

LOG = log.getLogger(__name__)


class AllotUnavailable(n_exc.ServiceUnavailable):
    """Allot could not be asked, or could not answer: the Neutron request fails (503).

    The message names Allot and the kind of failure only; Allot's address and the details, which a
    project has no business seeing, go to neutron-server's log.
    """

    message = _("The IPAM service Allot is unavailable (%(reason)s); try again later")


class AllotError(Exception):
    """A problem document from Allot: its code says what went wrong."""

    def __init__(self, status: int, code: str, detail: str):
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


class Client:
    def __init__(self, url: str, token: Optional[str], timeout: float, ca_file: Optional[str] = None):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = "Bearer " + token
        if ca_file:
            self.session.verify = ca_file

    def request(self, method: str, path: str, body: Any = None, params: Optional[dict] = None) -> tuple[int, Any]:
        try:
            r = self.session.request(method, self.url + path, json=body, params=params, timeout=self.timeout)
        except requests.Timeout:
            LOG.error("Allot at %s did not answer %s %s within %s s ([allot] timeout)", self.url, method, path, self.timeout)
            raise AllotUnavailable(reason=_("no answer in time"))
        except requests.RequestException as e:
            # the exception's text names the URL, never the token
            LOG.error("Allot at %s cannot be reached: %s: %s", self.url, type(e).__name__, e)
            raise AllotUnavailable(reason=_("cannot connect"))
        data = r.json() if r.content and r.headers.get("content-type", "").find("json") >= 0 else None
        if r.status_code >= 500 or r.status_code in (401, 403):
            detail = data.get("detail") if isinstance(data, dict) else r.text[:200]
            LOG.error("Allot at %s answered %s to %s %s: %s%s", self.url, r.status_code, method, path, detail,
                      " (check [allot] token and its scope)" if r.status_code in (401, 403) else "")
            raise AllotUnavailable(reason=_("it answered %s") % r.status_code)
        if r.status_code >= 400:
            d = data if isinstance(data, dict) else {}
            raise AllotError(r.status_code, str(d.get("code", r.status_code)), str(d.get("detail", r.text[:200])))
        return r.status_code, data


    def call(self, method: str, path: str, body: Any = None, params: Optional[dict] = None) -> Any:
        """The answer's body only."""
        return self.request(method, path, body, params)[1]


def seg(s: str) -> str:
    return quote(s, safe="")
