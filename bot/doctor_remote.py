"""``shiftbot doctor``: the chat platforms and the web APIs (Slack, Mattermost, Sentry, GitLab).

Read-only calls, each under the check's deadline: Slack ``auth.test`` (its ``x-oauth-scopes``
response header lists the scopes the token was granted; they are compared with the app
manifest's) and, in Socket Mode, ``apps.connections.open`` with the app token; channel aliases
through ``conversations.info`` / ``conversations.list``. Mattermost ``GET /api/v4/users/me``,
the team by name, each alias by id or name. Sentry ``GET /api/0/organizations/{org}/``. GitLab
``GET /api/v4/projects/:id`` for every project the config names.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from bot.doctor import FAIL, OK, Check, Failed, Outcome, skipped

if TYPE_CHECKING:
    from bot.config import Config, MattermostConfig, SlackConfig

DEADLINE = 15.0  # seconds for a whole group (login, then its aliases)
MANIFEST = Path(__file__).resolve().parent.parent / "config" / "slack-app-manifest.yaml"
# The bot scopes of config/slack-app-manifest.yaml, for installs without the file (the
# Docker image); tests/test_doctor.py keeps the two equal.
MANIFEST_SCOPES = ("commands", "app_mentions:read", "im:history", "channels:history",
                   "groups:history", "chat:write", "chat:write.public", "channels:read",
                   "groups:read", "files:write")
SLACK_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
MATTERMOST_ID = re.compile(r"^[a-z0-9]{26}$")


async def _request(method: str, url: str, *, what: str, hint: str, verify: bool = True,
                   **kwargs: Any) -> httpx.Response:
    from bot.httpclient import shared_client

    client = await shared_client(verify=verify)
    try:
        return await client.request(method, url, timeout=DEADLINE - 1, **kwargs)
    except httpx.TimeoutException:
        raise Failed(f"{what}: no answer within {DEADLINE - 1:g} s", hint) from None
    except httpx.HTTPError as exc:
        raise Failed(f"{what}: cannot connect ({type(exc).__name__})", hint) from None


def _json(response: httpx.Response, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise Failed(f"{what}: HTTP {response.status_code} without JSON",
                     "is this the right URL (not a proxy's or a login page)?") from None


# ---------------------------------------------------------------------------- Slack


def manifest_scopes(path: Path = MANIFEST) -> tuple[str, ...]:
    """The bot scopes the app manifest asks for (the built-in list without the file)."""
    if not path.is_file():
        return MANIFEST_SCOPES
    import yaml

    manifest = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return tuple(manifest.get("oauth_config", {}).get("scopes", {}).get("bot", []))


def slack_check(config: Config) -> Check:
    section = config.slack
    if section is None or not section.enabled:
        return skipped("slack", "not configured" if section is None else "disabled")

    async def run() -> list[Outcome]:
        return await _slack(section)

    return Check("slack", run, DEADLINE, "is slack.api_url reachable from this host (proxy)?")


async def _slack_call(section: SlackConfig, method: str, token: str,
                      **params: Any) -> tuple[dict[str, Any], httpx.Response]:
    url = section.api_url.rstrip("/") + "/" + method
    response = await _request("POST", url, what=method, data=params,
                              headers={"Authorization": f"Bearer {token}"},
                              hint="slack.api_url reachable from this host? (proxy, firewall)")
    return _json(response, method), response


async def _slack(section: SlackConfig) -> list[Outcome]:
    body, response = await _slack_call(section, "auth.test",
                                       section.bot_token.get_secret_value())
    if not body.get("ok"):
        raise Failed(f"auth.test: {body.get('error', 'refused')}",
                     "slack.bot_token must be the app's Bot User OAuth Token (xoxb-...), of "
                     "the installed app")
    who = f"as @{body.get('user')} in {body.get('team')}"
    granted = response.headers.get("x-oauth-scopes")
    missing = [s for s in manifest_scopes()
               if granted is not None and s not in {g.strip() for g in granted.split(",")}]
    outcomes = [Outcome(OK, "slack", f"auth.test {who}, "
                        + ("scopes as the manifest asks" if granted is not None
                           else "scopes not reported by Slack"))]
    if missing:
        outcomes = [Outcome(FAIL, "slack", f"auth.test {who}; missing scopes: "
                            f"{', '.join(missing)}",
                            "add them under OAuth & Permissions (or paste "
                            "config/slack-app-manifest.yaml), then reinstall the app")]
    if section.mode == "socket":
        outcomes.append(await _slack_app_token(section))
    return outcomes + await _slack_channels(section)


async def _slack_app_token(section: SlackConfig) -> Outcome:
    if section.app_token is None:
        return Outcome(FAIL, "slack app token", "socket mode without slack.app_token",
                       "an app-level token (xapp-...) with connections:write")
    body, _ = await _slack_call(section, "apps.connections.open",
                                section.app_token.get_secret_value())
    if not body.get("ok"):
        return Outcome(FAIL, "slack app token", f"apps.connections.open: "
                       f"{body.get('error', 'refused')}",
                       "slack.app_token: an app-level token (xapp-...) with connections:write, "
                       "and Socket Mode enabled in the app")
    return Outcome(OK, "slack app token", "socket mode: a connection can be opened")


async def _slack_channels(section: SlackConfig) -> list[Outcome]:
    token = section.bot_token.get_secret_value()
    outcomes = []
    names: dict[str, str] | None = None
    for alias, value in sorted(section.channels.items()):
        name = f"slack channel {alias}"
        if SLACK_ID.match(value):
            body, _ = await _slack_call(section, "conversations.info", token, channel=value)
            if body.get("ok"):
                outcomes.append(Outcome(OK, name, f"{value} is #{body['channel'].get('name')}"))
                continue
        if names is None:
            names = await _slack_channel_names(section, token)
        found = names.get(value.lstrip("#").lower())
        outcomes.append(Outcome(OK, name, f"{value} is {found}") if found else Outcome(
            FAIL, name, f"{value}: no such channel the bot can see",
            f"slack.channels.{alias}: the channel's name or id; invite the bot to a "
            "private channel"))
    return outcomes


async def _slack_channel_names(section: SlackConfig, token: str) -> dict[str, str]:
    found: dict[str, str] = {}
    cursor = ""
    for _ in range(50):  # 50 pages of 1000 channels: more than any workspace we serve
        body, _ = await _slack_call(section, "conversations.list", token, limit=1000,
                                    cursor=cursor, exclude_archived="true",
                                    types="public_channel,private_channel")
        if not body.get("ok"):
            raise Failed(f"conversations.list: {body.get('error', 'refused')}",
                         "the app needs channels:read and groups:read")
        found.update({c["name"].lower(): c["id"] for c in body.get("channels", [])})
        cursor = body.get("response_metadata", {}).get("next_cursor") or ""
        if not cursor:
            break
    return found


# ---------------------------------------------------------------------------- Mattermost


def mattermost_check(config: Config) -> Check:
    section = config.mattermost
    if section is None or not section.enabled:
        return skipped("mattermost", "not configured" if section is None else "disabled")

    async def run() -> list[Outcome]:
        return await _mattermost(section)

    return Check("mattermost", run, DEADLINE, "is mattermost.url reachable from this host?")


async def _mm_get(section: MattermostConfig, path: str, what: str) -> httpx.Response:
    return await _request("GET", f"{section.url.rstrip('/')}/api/v4{path}", what=what,
                          verify=section.verify_tls,
                          headers={"Authorization": f"Bearer {section.token.get_secret_value()}"},
                          hint="mattermost.url: the server's address as a browser uses it")


async def _mattermost(section: MattermostConfig) -> list[Outcome]:
    me = await _mm_get(section, "/users/me", "GET /users/me")
    if me.status_code in (401, 403):
        raise Failed(f"GET /users/me: {me.status_code}",
                     "mattermost.token: the bot account's access token (System Console > "
                     "Integrations > Bot Accounts)")
    if me.status_code != 200:
        raise Failed(f"GET /users/me: HTTP {me.status_code}", "is mattermost.url right?")
    user = _json(me, "GET /users/me")
    outcomes = [Outcome(OK, "mattermost", f"logged in as @{user.get('username')}")]
    team = await _mm_get(section, f"/teams/name/{quote(section.team, safe='')}", "team")
    if team.status_code != 200:
        outcomes.append(Outcome(FAIL, "mattermost team", f"{section.team}: HTTP "
                                f"{team.status_code}", "mattermost.team: the team's URL name; "
                                "add the bot account to the team"))
        return outcomes
    team_id = _json(team, "team").get("id", "")
    outcomes.append(Outcome(OK, "mattermost team", f"{section.team} ({team_id})"))
    for alias, value in sorted(section.channels.items()):
        outcomes.append(await _mm_channel(section, team_id, alias, value))
    return outcomes


async def _mm_channel(section: MattermostConfig, team_id: str, alias: str,
                      value: str) -> Outcome:
    name = f"mattermost channel {alias}"
    if MATTERMOST_ID.match(value):
        found = await _mm_get(section, f"/channels/{value}", name)
        if found.status_code == 200 and _json(found, name).get("team_id") == team_id:
            return Outcome(OK, name, f"{value} is ~{_json(found, name).get('name')}")
    channel = value.lstrip("~#").lower()
    found = await _mm_get(section, f"/teams/{team_id}/channels/name/{quote(channel, safe='')}",
                          name)
    if found.status_code == 200:
        return Outcome(OK, name, f"~{channel} is {_json(found, name).get('id')}")
    return Outcome(FAIL, name, f"{value}: not found in team {section.team} "
                   f"(HTTP {found.status_code})",
                   f"mattermost.channels.{alias}: the channel's name or id in the team; add "
                   "the bot to a private channel")


# ---------------------------------------------------------------------------- Sentry, GitLab


def sentry_check(config: Config) -> Check:
    from bot.alerts.config import SENTRY

    section = SENTRY.of(config) if "sentry" in config.feature_sections else None
    if section is None or section.token is None or not section.org:
        return skipped("sentry", "not configured (sentry.token and sentry.org)")

    async def run() -> list[Outcome]:
        org = quote(section.org or "", safe="")
        response = await _request(
            "GET", f"{section.api_url.rstrip('/')}/organizations/{org}/", what="Sentry API",
            headers={"Authorization": f"Bearer {section.token.get_secret_value()}"},
            hint="sentry.api_url reachable from this host?")
        if response.status_code == 401:
            raise Failed("Sentry refused the token (401)", "sentry.token: the internal "
                         "integration's token, with Organization: Read")
        if response.status_code in (403, 404):
            raise Failed(f"organization {section.org}: HTTP {response.status_code}",
                         "sentry.org: the organization's slug, as in its URLs")
        if response.status_code != 200:
            raise Failed(f"Sentry API: HTTP {response.status_code}", "sentry.api_url")
        body = _json(response, "Sentry API")
        return [Outcome(OK, "sentry", f"organization {body.get('slug', section.org)} "
                        f"({body.get('name', '?')})")]

    return Check("sentry", run, DEADLINE, "sentry.api_url reachable from this host?")


def gitlab_projects(config: Config) -> list[str]:
    """Every GitLab project the config names: the default and the restart targets'."""
    from bot.integrations.gitlab import GITLAB

    section = GITLAB.of(config) if "gitlab" in config.feature_sections else None
    found = [section.project] if section is not None and section.project else []
    restart = config.feature_sections.get("restart")
    for target in getattr(restart, "targets", {}).values():
        if getattr(target, "type", "") == "gitlab_pipeline":
            project = target.project or (section.project if section else None)
            if project:
                found.append(project)
    return list(dict.fromkeys(found))


def gitlab_checks(config: Config) -> list[Check]:
    from bot.integrations.gitlab import GITLAB, project_path

    section = GITLAB.of(config) if "gitlab" in config.feature_sections else None
    if section is None or not section.url:
        return [skipped("gitlab", "not configured (gitlab.url)")]
    if section.token is None:
        return [skipped("gitlab", "no gitlab.token (trigger tokens only: not checked)")]
    token = section.token.get_secret_value()

    def check(project: str) -> Check:
        async def run() -> list[Outcome]:
            response = await _request(
                "GET", f"{section.url}/api/v4/projects/{project_path(project)}",
                what="GitLab API", headers={"PRIVATE-TOKEN": token},
                hint="gitlab.url: the instance's address (without /api/v4)")
            if response.status_code == 401:
                raise Failed("GitLab refused the token (401)", "gitlab.token: a project "
                             "access token (api scope), not expired")
            if response.status_code in (403, 404):
                raise Failed(f"project {project}: HTTP {response.status_code}",
                             "the project's path (group/name) or id; the token's project "
                             "must be this one (or the token's user a member)")
            if response.status_code != 200:
                raise Failed(f"GitLab API: HTTP {response.status_code}", "gitlab.url")
            body = _json(response, "GitLab API")
            return [Outcome(OK, f"gitlab {project}", f"project "
                            f"{body.get('path_with_namespace', project)} (id {body.get('id')})")]

        return Check(f"gitlab {project}", run, DEADLINE, "gitlab.url reachable from here?")

    projects = gitlab_projects(config)
    return [check(p) for p in projects] or [skipped("gitlab", "no project named (gitlab.project)")]
