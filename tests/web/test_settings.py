"""``[console]``: off by default, strict, never on the peer port, fail closed."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.core.errors import ConfigError
from node.web.sessions import SignInLimiter, csrf_ok
from node.web.settings import ConsoleSettings


def parse(doc: object, peer: str = "0.0.0.0:50051") -> ConsoleSettings:
    return ConsoleSettings.parse(Path("/srv/node"), doc, peer_listen=peer)


def test_off_by_default_with_safe_defaults() -> None:
    s = parse({})
    assert (s.enabled, s.listen, s.idle_timeout_s, s.sign_in_attempts_per_minute, s.oidc) == (
        False, "127.0.0.1:8443", 900, 10, False)
    assert s.origin == "https://127.0.0.1:8443"
    assert parse({"public_url": "https://console.kaz.example:9443/x"}).origin == (
        "https://console.kaz.example:9443")


@pytest.mark.parametrize(("doc", "message"), [
    ({"enable": True}, "[console] has no key 'enable'"),
    ({"enabled": "true"}, "[console] enabled must be true or false"),
    ({"listen": "8443"}, "[console] listen must be host:port"),
    ({"listen": "0.0.0.0:50051"}, "[console] listen must not be the peer port"),
    ({"idle_timeout_s": 10}, "[console] idle_timeout_s must be 60..86400"),
    ({"idle_timeout_s": True}, "[console] idle_timeout_s must be 60..86400"),
    ({"timezone": "Asia/Nowhere"}, "is not a known zone"),
    ({"default_language": "de"}, "default_language must be one of ru, en"),
    ({"public_url": "http://console"}, "[console] public_url must be an https:// URL"),
    ({"oidc_authorize_url": "https://idp/auth"}, "go together"),
    ({"max_upload_bytes": 9 * 1024 * 1024}, "max_upload_bytes must be 1024..8388608"),
])
def test_typos_and_unsafe_values_are_one_line_errors(doc: dict[str, object], message: str
                                                    ) -> None:
    with pytest.raises(ConfigError) as err:
        parse(doc)
    assert message in err.value.message and err.value.reason == "bad_config"


def test_node_toml_console_section_is_checked(tmp_path: Path) -> None:
    from node.cli.main import main as bxnode
    from node.config import load_config
    from tests.federation import DEV

    d = tmp_path / "n"
    assert bxnode(["init", "--node-dir", str(d), "--node-id", "KAZ-BS", "--country", "KAZ",
                   "--dev", "--dev-keys", str(DEV / "kaz"), "--listen", "127.0.0.1:50051",
                   "--members", str(DEV / "members.json")]) == 0
    base = (d / "node.toml").read_text()
    (d / "node.toml").write_text(base + '\n[console]\nenabled = true\nlisten = "127.0.0.1:8443"\n')
    assert load_config(d).console.enabled
    (d / "node.toml").write_text(base + '\n[console]\nenabled = true\nlisten = "127.0.0.1:50051"\n')
    with pytest.raises(ConfigError, match="must not be the peer port"):
        load_config(d)


def test_csrf_tokens_compare_exactly() -> None:
    assert csrf_ok("abc", "abc")
    assert not csrf_ok("abc", "abd") and not csrf_ok("abc", None) and not csrf_ok("", "")


def test_sign_in_limit_is_per_address_per_minute() -> None:
    now = [0]
    limit = SignInLimiter(per_minute=2, clock_ms=lambda: now[0])
    assert [limit.allow("10.0.0.1") for _ in range(3)] == [True, True, False]
    assert limit.allow("10.0.0.2")
    now[0] += 60_000
    assert limit.allow("10.0.0.1")
