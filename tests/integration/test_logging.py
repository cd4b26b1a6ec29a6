"""Logs are JSON lines with a request id, and never carry personal data at info or above."""

from __future__ import annotations

import json

import pytest

from node.client.peer import QueryContext
from node.core.errors import RemoteError
from node.core.model import DocumentQuery, PartialDate, PersonQuery, QueryKind, Sex
from node.logging import configure
from tests.federation import CTX, Federation

pytestmark = pytest.mark.integration

SECRETS = ["N0481516", "Асанов", "Бакыт", "ASANOV", "KGZ-WNT-2026-0007", "KAZ-SLTD-2026-000117",
           "1979-11-02", "CASE-1", "officer-7", "MLA-99"]


def test_no_personal_data_in_logs(fed: Federation, capfd: pytest.CaptureFixture[str]) -> None:
    configure()
    capfd.readouterr()
    kgz = fed.client("KGZ-BS")
    kgz.lookup("KAZ-BS", CTX, QueryKind.DOCUMENT,
               [DocumentQuery(number="N0481516", issuing_state="KAZ")])
    uzb = fed.client("UZB-BS")
    uzb.lookup("KGZ-BS", CTX, QueryKind.PERSON, [PersonQuery(
        family_name="Асанов", given_names="Бакыт", date_of_birth=PartialDate(1979, 11, 2),
        nationality="KGZ", sex=Sex.MALE)])
    with pytest.raises(RemoteError):
        uzb.lookup("KAZ-BS", QueryContext(operator="officer-7", purpose="criminal_investigation",
                                          legal_basis="MLA", case_ref="MLA-99"),
                   QueryKind.DOCUMENT, [DocumentQuery(number="N0481516", issuing_state="KAZ")])
    kgz.close()
    uzb.close()
    err = capfd.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    lookups = [x for x in lines if x.get("event") == "lookup"]
    assert len(lookups) == 3
    assert all(len(x["request_id"]) == 16 for x in lookups)
    assert sorted(x["outcome"] for x in lookups) == ["answered", "answered", "denied"]
    for secret in SECRETS:
        assert secret not in err, secret
