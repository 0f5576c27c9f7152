"""hearthctl's settings: flags, HEARTH_* and FIREWORKS_* variables, profiles, login.

``login`` is driven through ``main([...])`` against a test double of the control-plane API
(tests/unit/hearthctl_fake.py), which checks the key it is given.
"""

from __future__ import annotations

import re
import stat
import tomllib
from pathlib import Path

import pytest

from hearth.cli import main
from hearth.cli.profiles import (
    ConfigError,
    read_profiles,
    render_profiles,
    resolve,
    save_profile,
)
from tests.unit import hearthctl_fake
from tests.unit.hearthctl_fake import KEY, FakeApi, serve

# The double's fixtures, requested by name below.
clean_env = hearthctl_fake.clean_env


PROFILES = {
    "default": {"base_url": "http://file", "account_id": "from-file", "api_key": "k-file"},
    "staging": {"base_url": "http://staging", "account_id": "stage"},
}


def test_flag_beats_hearth_variable_beats_fireworks_variable_beats_profile() -> None:
    env = {"FIREWORKS_ACCOUNT_ID": "fw", "HEARTH_API_KEY": "k-hearth", "FIREWORKS_API_KEY": "k-fw"}
    settings = resolve({"base_url": "http://flag"}, env, PROFILES)
    assert (settings.base_url, settings.account_id, settings.api_key) == (
        "http://flag",
        "fw",
        "k-hearth",
    )
    assert settings.sources == {
        "base_url": "--base-url",
        "account_id": "FIREWORKS_ACCOUNT_ID",
        "api_key": "HEARTH_API_KEY",
    }
    assert resolve({}, {}, PROFILES).sources["api_key"] == "profile 'default'"


def test_profile_from_flag_or_variable() -> None:
    assert resolve({}, {"HEARTH_PROFILE": "staging"}, PROFILES).account_id == "stage"
    chosen = resolve({}, {"HEARTH_PROFILE": "staging"}, PROFILES, "default")
    assert chosen.account_id == "from-file"
    missing = resolve({}, {}, PROFILES, "staging")
    expected = (
        "no api_key: pass --api-key, set HEARTH_API_KEY or FIREWORKS_API_KEY, "
        "or run `hearthctl login` (profile 'staging')"
    )
    with pytest.raises(ConfigError, match=re.escape(expected)):
        missing.require("api_key")


def test_config_file_round_trips_odd_strings(tmp_path: Path) -> None:
    odd = {"p q": {"api_key": 'a"b\\c\n\x7f\u00e9', "account_id": "x"}}
    text = render_profiles(odd)
    assert tomllib.loads(text)["profiles"] == odd
    path = tmp_path / "config.toml"
    path.write_text(text)
    assert read_profiles(path) == odd


def test_save_keeps_other_profiles_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "dir" / "config.toml"
    save_profile(path, "a", {"account_id": "one", "api_key": "k1"})
    save_profile(path, "b", {"account_id": "two"})
    save_profile(path, "a", {"account_id": "three", "user_id": ""})
    assert read_profiles(path) == {"a": {"account_id": "three"}, "b": {"account_id": "two"}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("profiles = 3", "'profiles' must be a table"),
        ("[profiles.a]\nregion = 'x'", "profiles.a.region is not a setting"),
        ("[profiles.a]\napi_key = 3", "profiles.a.api_key must be a string"),
        ("[profiles.a", "not valid TOML"),
    ],
)
def test_bad_config_files_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_profiles(path)


@pytest.fixture
def fake(clean_env: Path):
    yield from serve()


def test_login_checks_the_key_then_stores_the_profile(fake: FakeApi, clean_env: Path, capsys):
    args = ["login", "--base-url", fake.base_url + "/", "-a", "acme", "--user-id", "alice"]
    assert main([*args, "--api-key", "wrong"]) == 1
    assert "invalid API key (HTTP 401" in capsys.readouterr().err
    assert not clean_env.exists()

    assert main([*args, "--api-key", KEY, "--profile", "work"]) == 0
    assert f"profile 'work' saved in {clean_env}" in capsys.readouterr().out
    assert fake.calls("GET", "/v1/accounts/acme")[-1].authorization == f"Bearer {KEY}"
    assert read_profiles(clean_env) == {
        "work": {
            "base_url": fake.base_url,
            "account_id": "acme",
            "api_key": KEY,
            "user_id": "alice",
        }
    }
    # The profile is then all a command needs.
    fake.add("deployments", "d1", state="READY")
    assert main(["get", "deployment", "d1", "-p", "work"]) == 0
    assert main(["get", "deployment", "d1"]) == 2  # the default profile is empty
    assert "no base_url" in capsys.readouterr().err


def test_login_reads_the_key_from_stdin(fake: FakeApi, clean_env: Path, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", _Lines(KEY + "\n"))
    assert main(["login", "--base-url", fake.base_url, "-a", "acme"]) == 0
    assert read_profiles(clean_env)["default"]["api_key"] == KEY


def test_fireworks_variables_override_the_profile(
    fake: FakeApi, clean_env: Path, monkeypatch, capsys
) -> None:
    save_profile(clean_env, "default", {"base_url": "http://127.0.0.1:9", "account_id": "other",
                                         "api_key": "stale"})  # fmt: skip
    monkeypatch.setenv("FIREWORKS_BASE_URL", fake.base_url)
    monkeypatch.setenv("FIREWORKS_ACCOUNT_ID", "acme")
    monkeypatch.setenv("FIREWORKS_API_KEY", KEY)
    assert main(["list", "deployments"]) == 0
    assert fake.calls("GET", "/v1/accounts/acme/deployments")
    assert main(["whoami", "-o", "json"]) == 0
    out = capsys.readouterr().out
    assert '"account_idFrom": "FIREWORKS_ACCOUNT_ID"' in out
    assert KEY not in out  # the key is masked


class _Lines:
    def __init__(self, text: str) -> None:
        self._text = text

    def isatty(self) -> bool:
        return False

    def readline(self) -> str:
        return self._text
