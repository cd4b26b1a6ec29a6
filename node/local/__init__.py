"""The LocalService: the border post's way in (README, "For the national system integrator").

* :mod:`node.local.client` — the typed client library (:class:`LocalClient`);
* :mod:`node.local.auth` — identities (certificates, OpenID Connect tokens) and roles;
* :mod:`node.local.server` — the listener (``bxnode serve`` starts it);
* :mod:`node.local.service` — what each method does, over the node's own peer client.
"""

from node.local.client import (
    DeskFollowUp,
    FanOut,
    LocalCallError,
    LocalClient,
    PeerResult,
    SentFollowUp,
    WhoAmI,
)

__all__ = ["DeskFollowUp", "FanOut", "LocalCallError", "LocalClient", "PeerResult",
           "SentFollowUp", "WhoAmI"]
