"""Where ``hearthctl`` finds the gateway URL, the account and the API key.

Each setting comes from the first of: its command-line flag, its ``HEARTH_*`` environment
variable, the ``FIREWORKS_*`` variable the ``fireworks-ai`` SDK reads for the same thing,
the selected profile in the config file (written by ``hearthctl login``).

The config file is TOML, ``~/.hearth/config.toml`` unless ``HEARTH_CONFIG`` names another::

    [profiles.default]
    base_url = "https://hearth.example.com"
    account_id = "acme"
    api_key = "hk_..."
    user_id = "alice"
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

CONFIG_ENV: Final = "HEARTH_CONFIG"
PROFILE_ENV: Final = "HEARTH_PROFILE"
DEFAULT_PROFILE: Final = "default"

#: Setting -> environment variables, most specific first. The FIREWORKS_* names are the
#: ones the official fireworks-ai SDK reads (fireworks/_client.py), so one environment
#: serves both.
ENVIRONMENT: Final[dict[str, tuple[str, ...]]] = {
    "base_url": ("HEARTH_BASE_URL", "FIREWORKS_BASE_URL"),
    "account_id": ("HEARTH_ACCOUNT_ID", "FIREWORKS_ACCOUNT_ID"),
    "api_key": ("HEARTH_API_KEY", "FIREWORKS_API_KEY"),
    "user_id": ("HEARTH_USER_ID",),
}
SETTINGS: Final = tuple(ENVIRONMENT)


class ConfigError(Exception):
    """A setting is missing or the config file cannot be used; the message says which."""


@dataclass(frozen=True)
class Settings:
    """Resolved settings; ``sources`` says where each came from (flag, variable, file)."""

    profile: str
    base_url: str | None
    account_id: str | None
    api_key: str | None
    user_id: str | None
    sources: Mapping[str, str]

    def require(self, setting: str) -> str:
        value: str | None = getattr(self, setting)
        if not value:
            variables = " or ".join(ENVIRONMENT[setting])
            flag = "--" + setting.replace("_", "-")
            raise ConfigError(
                f"no {setting}: pass {flag}, set {variables}, or run `hearthctl login` "
                f"(profile {self.profile!r})"
            )
        return value


def config_path(env: Mapping[str, str]) -> Path:
    """The config file: ``$HEARTH_CONFIG`` or ``~/.hearth/config.toml``."""
    configured = env.get(CONFIG_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".hearth" / "config.toml"


def read_profiles(path: Path) -> dict[str, dict[str, str]]:
    """Profile name -> its settings; empty when the file does not exist."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error}") from error
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from error
    profiles = document.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError(f"{path}: 'profiles' must be a table")
    result: dict[str, dict[str, str]] = {}
    for name, values in profiles.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: profiles.{name} must be a table")
        for key, value in values.items():
            if key not in SETTINGS:
                raise ConfigError(
                    f"{path}: profiles.{name}.{key} is not a setting; known: {', '.join(SETTINGS)}"
                )
            if not isinstance(value, str):
                raise ConfigError(f"{path}: profiles.{name}.{key} must be a string")
        result[name] = dict(values)
    return result


def resolve(
    flags: Mapping[str, str | None],
    env: Mapping[str, str],
    profiles: Mapping[str, Mapping[str, str]],
    profile: str | None = None,
) -> Settings:
    """Each setting from its flag, then its variables, then the profile (pure)."""
    name = profile or env.get(PROFILE_ENV) or DEFAULT_PROFILE
    stored = profiles.get(name, {})
    values: dict[str, str | None] = {}
    sources: dict[str, str] = {}
    for setting, variables in ENVIRONMENT.items():
        flag = flags.get(setting)
        if flag:
            values[setting], sources[setting] = flag, "--" + setting.replace("_", "-")
            continue
        found = next((variable for variable in variables if env.get(variable)), None)
        if found is not None:
            values[setting], sources[setting] = env[found], found
        elif stored.get(setting):
            values[setting], sources[setting] = stored[setting], f"profile {name!r}"
        else:
            values[setting] = None
    return Settings(
        profile=name,
        base_url=values["base_url"],
        account_id=values["account_id"],
        api_key=values["api_key"],
        user_id=values["user_id"],
        sources=sources,
    )


def _toml_string(value: str) -> str:
    """A TOML basic string (escapes quotes, backslashes and control characters)."""
    out = []
    for char in value:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def render_profiles(profiles: Mapping[str, Mapping[str, str]]) -> str:
    """The config file's text for these profiles (inverse of :func:`read_profiles`)."""
    lines = ["# hearthctl profiles; `hearthctl login` writes this file. It holds API keys."]
    for name in sorted(profiles):
        lines += ["", f"[profiles.{_toml_string(name)}]"]
        lines += [
            f"{key} = {_toml_string(value)}"
            for key, value in profiles[name].items()
            if key in SETTINGS and value
        ]
    return "\n".join(lines) + "\n"


def save_profile(path: Path, name: str, values: Mapping[str, str]) -> None:
    """Write (or replace) one profile, keeping the others; the file is private (0600)."""
    profiles = read_profiles(path)
    profiles[name] = {key: values[key] for key in SETTINGS if values.get(key)}
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(render_profiles(profiles))
    os.replace(temporary, path)
