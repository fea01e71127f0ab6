"""Secret keys inside feature sections (a status check's headers) are masked before the section
is validated, through discriminated unions too: no problem message or log can echo them."""

from __future__ import annotations

from pydantic import BaseModel, SecretStr

from bot.features import ConfigSection, bind_sections
from bot.secrets import masker


class _Section(BaseModel):
    token: SecretStr | None = None
    limit: int = 1


def test_secret_keys_of_feature_sections_are_masked_before_validation(make_config) -> None:
    value = "literal-token-4711-not-from-env"
    config = make_config({"demo": {"token": value, "limit": "many"}})
    problems = bind_sections(config, {"demo": ConfigSection("demo", _Section)})
    assert problems  # "limit" is not an int: validation failed, yet the token is known
    assert value not in masker.mask(f"header {value}")


def test_secrets_inside_a_discriminated_union_of_checks_are_masked(make_config) -> None:
    from bot.status.config import StatusConfig

    value = "Basic c2hpZnRib3Q6bm90LWluLWVudg=="
    check = {"name": "workers", "type": "flower", "url": "http://127.0.0.1:1/",
             "headers": {"Authorization": value}, "bogus": 1}
    config = make_config({"status": {"checks": [check]}})
    problems = bind_sections(config, {"status": ConfigSection("status", StatusConfig)})
    assert problems and all(value not in str(p) for p in problems)
    assert value not in masker.mask(f"sent {value}")
