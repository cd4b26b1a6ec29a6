"""A token that stops signing while the node serves: the request is refused
UNAVAILABLE/signing_key_unavailable, audited, and nothing else is written (the real
Responder and lookup handler on the in-memory ports of tests/unit/pipeline)."""

from __future__ import annotations

from node.core.errors import EnvironmentFault
from node.core.signer import SeedSigner
from node.responder import Responder
from tests.unit.pipeline.test_responder import CLEAN, OWNER, Rig, request, rig  # noqa: F401


class UnpluggedTokenStandIn:
    """A stand-in for a Pkcs11Signer whose token is gone: the right public key, and every
    sign fails as Pkcs11Signer.sign fails after its one reopen."""

    public_key = SeedSigner(seed=bytes(OWNER)).public_key

    def sign(self, message: bytes) -> bytes:
        raise EnvironmentFault("the signing key's PKCS#11 token is unavailable",
                               reason="signing_key_unavailable")


def test_an_unplugged_token_refuses_unsigned_audited_and_writes_nothing_else(rig: Rig) -> None:  # noqa: F811
    r = rig.responder
    gone = Responder(settings=r.settings, signing_key=UnpluggedTokenStandIn(),
                     directory=r.directory, policy=r.policy, uow=r.uow, nonces=r.nonces,
                     receipts=r.receipts, audit=r.audit, clock_ms=r.clock_ms)
    assert gone.key_id == r.key_id
    ex = gone.handle(rig.lookup, request(CLEAN), tls_fingerprint="ab" * 32)
    assert ex.error is not None
    assert (ex.error.status, ex.error.reason) == ("UNAVAILABLE", "signing_key_unavailable")
    assert ex.response is None and ex.refusal is None  # no key to sign a refusal with
    [body] = rig.audit.bodies()
    assert (body["outcome"], body["status"], body["reason"], body["requester"]) == (
        "rejected", "UNAVAILABLE", "signing_key_unavailable", "KGZ-BS")
    assert rig.usage.items_today("KGZ-BS", "2026-07-01") == 0  # the answer was rolled back
    assert rig.receipts.all() == []
    assert rig.uow.commits == 1
