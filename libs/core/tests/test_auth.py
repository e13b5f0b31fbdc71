from pathlib import Path

import pytest
from qianmian_core.auth import Principal, TokenRegistry


def write_tokens(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "tokens.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def test_known_token_authenticates_with_scopes(tmp_path: Path) -> None:
    path = write_tokens(
        tmp_path, 'clients:\n  svc:\n    token: "' + "a" * 30 + '"\n    scopes: [products:read]\n'
    )
    registry = TokenRegistry.from_file(path)
    principal = registry.authenticate("a" * 30)
    assert principal == Principal(client="svc", scopes=frozenset({"products:read"}))
    assert registry.authenticate("b" * 30) is None


def test_wildcard_scope_covers_resource_only() -> None:
    principal = Principal(client="c", scopes=frozenset({"products:*"}))
    assert principal.has("products:approve")
    assert not principal.has("profile:read")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("clients: {}\n", "no 'clients'"),
        ('clients:\n  svc:\n    token: "short"\n', "shorter than"),
        (
            'clients:\n  a:\n    token: "' + "x" * 30 + '"\n  b:\n    token: "' + "x" * 30 + '"\n',
            "reuses",
        ),
    ],
)
def test_unusable_token_files_are_refused(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TokenRegistry.from_file(write_tokens(tmp_path, body))


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        TokenRegistry.from_file(tmp_path / "nope.yaml")


def test_dev_token_file_loads() -> None:
    registry = TokenRegistry.from_file(Path("config/dev-tokens.yaml"))
    from qianmian_core.testing import dev_token

    principal = registry.authenticate(dev_token("recommender"))
    assert principal is not None
    assert principal.client == "recommender"
