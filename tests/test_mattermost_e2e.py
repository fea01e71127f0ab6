"""End to end over real sockets: messages, slash commands, buttons, identities, registration.

The bot runs with its real HTTP server and the adapter talks to the fake Mattermost through
mattermostautodriver (REST) and aiohttp (websocket); the fake calls the bot's slash-command and
button URLs like the server does.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import sample_handlers
import yaml
from fakes.mattermost import FakeMattermost
from mattermost_harness import Stack, command_token, running

from bot import db
from bot.adapters.mattermost import register_commands_cli
from bot.reply import Reply

pytestmark = pytest.mark.filterwarnings("ignore:ssl=None is deprecated:DeprecationWarning")

AUTH_FAILURES = 'shiftbot_auth_failures_total{source="mattermost"}'


def ran(command: str) -> list[tuple[str, str, dict[str, object]]]:
    return [r for r in sample_handlers.RUNS if r[0] == command]


def buttons(post: dict[str, Any]) -> list[str]:
    attachments = post["props"].get("attachments") or []
    return [a["id"] for att in attachments for a in att.get("actions") or []]


async def prompt_for(st: Stack, post: dict[str, Any]) -> dict[str, Any]:
    """The bot's post with buttons in ``post``'s thread."""
    root = post["root_id"] or post["id"]
    return await st.mm.wait_for_post(predicate=lambda p: p["root_id"] == root
                                     and p["user_id"] == st.mm.bot.id and buttons(p))


# ------------------------------------------------------------------------- messages


async def test_prefixed_message_is_answered_in_its_thread(make_bot) -> None:
    async with running(make_bot) as st:
        post = await st.mm.post_as("alice", "ops", "!sample echo hello")
        note = await st.ephemeral("alice", lambda p: p["message"] == "hello")
        assert note["root_id"] == post["id"] and note["channel_id"] == st.mm.channel("ops").id
        assert ran("sample.echo") == [("sample.echo", "alice", {"words": ["hello"], "times": 1})]

        table = await st.mm.post_as("alice", "ops", "!sample table --rows 2")
        reply = await st.command_reply(table)
        assert reply["root_id"] == table["id"] and "```" in reply["message"]
        assert "job-1" in reply["message"]


async def test_mention_in_a_thread_replies_to_the_threads_first_post(make_bot) -> None:
    async with running(make_bot) as st:
        root = await st.mm.post_as("bob", "ops", "the pipeline is stuck again")
        ask = await st.mm.post_as("alice", "ops", "@shiftbot sample echo look --public",
                                  root_id=root["id"])
        reply = await st.command_reply(ask)
        assert reply["message"] == "look"
        assert reply["root_id"] == root["id"] != ask["id"]  # never a reply's id
        assert ran("sample.echo")[0][1] == "alice"


async def test_direct_message_needs_no_prefix(make_bot) -> None:
    async with running(make_bot) as st:
        dm = st.mm.dm_channel("alice")
        post = await st.mm.post_as("alice", dm, "sample echo psst")
        reply = await st.mm.wait_for_post(dm, user=st.mm.bot)
        assert reply["message"] == "psst" and reply["root_id"] == post["id"]


async def test_what_is_not_a_command_is_ignored(make_bot) -> None:
    async with running(make_bot) as st:
        await st.mm.post_as("alice", "ops", "just chatting, ask @shiftbot later")
        await st.mm.post_as("alice", "ops", "!sample echo hook", props={"from_webhook": "true"})
        await st.mm.post_as("shiftbot", "ops", "!sample echo self")  # the bot's own post
        await st.mm.post_as("alice", "ops", "@shiftbotter sample echo other")
        marker = await st.mm.post_as("alice", "ops", "@shiftbot: sample echo marker --public")
        await st.command_reply(marker)
        assert [r[2]["words"] for r in sample_handlers.RUNS] == [["marker"]]
        assert [p["message"] for p in st.mm.posts("ops") if p["user_id"] == st.mm.bot.id] \
            == ["!sample echo self", "marker"]


async def test_errors_and_denials_stay_private_and_channel_grants_apply(make_bot) -> None:
    async with running(make_bot) as st:
        # dave is a viewer in the ops channel only (grant limited to the channel alias)
        ok = await st.mm.post_as("dave", "ops", "!sample echo hi")
        await st.ephemeral("dave", lambda p: p["message"] == "hi" and p["root_id"] == ok["id"])
        no = await st.mm.post_as("dave", "alerts", "!sample echo hi")
        denial = await st.ephemeral("dave", lambda p: p["root_id"] == no["id"])
        assert "You may not run 'sample echo'" in denial["message"]
        bad = await st.mm.post_as("alice", "ops", "!sample fail boom")
        error = await st.ephemeral("alice", lambda p: p["root_id"] == bad["id"])
        assert "internal error" in error["message"] and "Traceback" not in error["message"]
        assert "secret-token-value" not in error["message"]
        typo = await st.mm.post_as("alice", "ops", "!sampel echo")
        usage = await st.ephemeral("alice", lambda p: p["root_id"] == typo["id"])
        assert "sample" in usage["message"]
        assert st.mm.total_connections == 1  # a failing handler never touches the socket
        assert not [p for p in st.mm.posts("alerts") if p["user_id"] == st.mm.bot.id]


async def test_slow_message_command_says_working_first(make_bot) -> None:
    async with running(make_bot) as st:
        post = await st.mm.post_as("alice", "ops", "!sample slow --seconds 0")
        await st.ephemeral("alice", lambda p: p["message"] == "done slowly")
        messages = [p["message"] for p in st.mm.ephemeral_posts("alice")
                    if p["root_id"] == post["id"]]
        assert messages[0].startswith("Working on `sample slow`") and messages[-1] == "done slowly"


# ------------------------------------------------------------------------- slash commands


async def test_slash_command_with_the_right_token(make_bot) -> None:
    cfg = {"commands": {"shiftbot": None, "sample": "sample"}}
    async with running(make_bot, mattermost=cfg) as st:
        result = await st.mm.invoke_command(None, "shiftbot", "sample echo hi", "alice", "ops")
        assert result.status == 200 and result.server_status == 200
        assert result.headers["Content-Type"].startswith("application/json")
        assert result.json == {"response_type": "ephemeral", "text": "hi"}
        assert result.ephemeral[0].post["message"] == "hi"

        alias = await st.mm.invoke_command(None, "sample", "echo via alias --public", "bob",
                                           "ops")
        assert alias.json["response_type"] == "in_channel"
        assert alias.posts[0]["message"] == "via alias"
        assert [r[1] for r in ran("sample.echo")] == ["alice", "bob"]

        # the token in the Authorization header only (no form field) is accepted too
        req = st.mm.build_command_request("shiftbot", "sample echo header", "carol", "ops")
        form = [(k, v) for k, v in req.form if k != "token"]
        async with httpx.AsyncClient(trust_env=False) as client:
            resp = await client.post(req.url, data=dict(form), headers=req.headers)
        assert resp.status_code == 200 and resp.json()["text"] == "header"
        async with httpx.AsyncClient(trust_env=False) as client:  # a command set to GET
            got = await client.get(req.url, params=dict(req.form))
        assert got.status_code == 200 and got.json()["text"] == "header"

        empty = await st.mm.invoke_command(None, "shiftbot", "", "alice", "ops")
        assert empty.server_status == 200 and "help" in empty.json["text"].lower()


async def test_slash_command_with_a_wrong_or_missing_token_is_refused(make_bot) -> None:
    async with running(make_bot) as st:
        wrong = await st.mm.invoke_command(None, "shiftbot", "sample echo x", "alice", "ops",
                                           token="forged-token")
        assert wrong.status == 401 and wrong.server_status == 500
        req = st.mm.build_command_request("shiftbot", "sample echo y", "alice", "ops", token="")
        async with httpx.AsyncClient(trust_env=False) as client:
            missing = await client.post(req.url, data=dict(req.form), headers={})
        assert missing.status_code == 401
        assert sample_handlers.RUNS == []
        assert await st.metric(AUTH_FAILURES) == 2.0


async def test_slow_slash_command_answers_through_response_url(make_bot) -> None:
    async with running(make_bot) as st:
        result = await st.mm.invoke_command(None, "shiftbot", "sample slow --seconds 0",
                                            "alice", "ops")
        assert result.json["response_type"] == "ephemeral"
        assert result.json["text"].startswith("Working on `sample slow`")
        await st.mm.wait_for(lambda: st.mm.hook_uses)
        use = st.mm.hook_uses[0]
        assert use.status == 200 and use.hook_id == result.request.hook.id
        assert use.response == {"response_type": "ephemeral", "text": "done slowly"}
        assert ran("sample.slow") and len(st.mm.hook_uses) == 1


async def test_response_url_used_up_falls_back_to_the_posts_api(make_bot) -> None:
    from bot.adapters.mattermost.outbound import Outgoing, Responder, Where

    async with running(make_bot) as st:
        result = await st.mm.invoke_command(None, "shiftbot", "help", "alice", "ops")
        ops = st.mm.channel("ops").id
        alice = st.mm.user("alice").id
        where = Where(ops, alice, responder=Responder(result.response_url))
        for i in range(6):
            await st.adapter.outbox.send(Outgoing("ephemeral", where, f"note {i}"))
        assert [u.status for u in st.mm.hook_uses] == [200] * 5
        assert st.mm.ephemeral_posts("alice")[-1]["message"] == "note 5"
        assert st.mm.find_requests("POST /api/v4/posts/ephemeral")[-1].status == 201

        st.mm.advance(31 * 60)  # expired: the API again, without wasting a call on the hook
        fresh = await st.mm.invoke_command(None, "shiftbot", "help", "bob", "ops")
        late = Where(ops, st.mm.user("bob").id, responder=Responder(fresh.response_url))
        late.responder.created -= 31 * 60  # type: ignore[union-attr]
        await st.adapter.outbox.send(Outgoing("post", late, "late answer"))
        assert st.mm.posts("ops")[-1]["message"] == "late answer"
        assert len(st.mm.hook_uses) == 5


# ------------------------------------------------------------------------- buttons


async def test_confirmation_is_two_clicks_and_runs_once(make_bot) -> None:
    async with running(make_bot) as st:
        post = await st.mm.post_as("alice", "ops", "!sample wipe db")
        prompt = await prompt_for(st, post)
        assert buttons(prompt) == ["confirmask", "cancel"]
        stored = st.mm.post(prompt["id"])["props"]["attachments"][0]["actions"][0]
        assert stored["integration"]["url"] == st.action_url
        assert stored["integration"]["context"]["a"] == "ask"  # signed, stored server-side

        other = await st.mm.click(None, prompt["id"], "confirmask", "bob")
        # The gate's rule (Gate.may_decide), worded as for a typed `confirm ID`.
        assert other.status == 200 and other.ephemeral_text.startswith("Only alice, who asked")
        assert other.post is None and buttons(st.mm.post(prompt["id"])) == ["confirmask", "cancel"]

        first = await st.mm.click(None, prompt["id"], "confirmask", "alice")
        assert first.status == 200 and buttons(first.post) == ["confirm", "cancel"]
        assert "Run `sample wipe db` now?" in first.post["message"]
        assert sample_handlers.RUNS == []

        replay = st.click_payload(first.post, "confirm", "alice")
        second = await st.mm.click(None, prompt["id"], "confirm", "alice")
        assert second.status == 200, second.error
        assert ran("sample.wipe") == [("sample.wipe", "alice", {"target": "db"})]
        assert "Confirmed by alice" in second.post["message"] and "ran: ok" in second.post[
            "message"]
        assert buttons(second.post) == []
        assert second.ephemeral_text == "wiped db"

        again = await st.post_action(replay)  # a double click, or a replayed request
        assert again.status_code == 200 and "already decided" in again.json()["ephemeral_text"]
        assert len(ran("sample.wipe")) == 1


async def test_cancel_on_the_first_step(make_bot) -> None:
    async with running(make_bot) as st:
        post = await st.mm.post_as("alice", "ops", "!sample wipe logs")
        prompt = await prompt_for(st, post)
        result = await st.mm.click(None, prompt["id"], "cancel", "alice")
        assert "Cancelled by alice" in result.post["message"] and buttons(result.post) == []
        assert sample_handlers.RUNS == []


async def test_forged_and_expired_contexts_are_refused(make_bot) -> None:
    async with running(make_bot) as st:
        post = await st.mm.post_as("alice", "ops", "!sample wipe db")
        prompt = await prompt_for(st, post)
        genuine = st.click_payload(prompt, "cancel", "alice")
        request_id = genuine["context"]["r"]

        forged = {**genuine, "context": {**genuine["context"], "a": "confirm"}}
        assert (await st.post_action(forged)).status_code == 401
        unsigned = {**genuine, "context": {"a": "confirm", "r": request_id, "e": "9999999999",
                                           "v": "1", "s": "0" * 64}}
        assert (await st.post_action(unsigned)).status_code == 401
        assert (await st.post_action({**genuine, "context": None})).status_code == 401
        other_key = __import__("bot.adapters.mattermost.actions", fromlist=["ActionSigner"])
        stranger = other_key.ActionSigner(b"not the bot's key").sign("confirm", request_id, 60)
        assert (await st.post_action({**genuine, "context": stranger})).status_code == 401

        expired = st.adapter.signer.sign("confirm", request_id, -5)
        late = await st.post_action({**genuine, "context": expired})
        assert late.status_code == 200 and "expired" in late.json()["ephemeral_text"]

        assert sample_handlers.RUNS == []
        assert await st.metric(AUTH_FAILURES) == 4.0
        assert buttons(st.mm.post(prompt["id"])) == ["confirmask", "cancel"]  # untouched


async def test_approval_needs_a_second_person_with_the_role(make_bot) -> None:
    async with running(make_bot) as st:
        post = await st.mm.post_as("alice", "ops", "!sample restart web")
        card = await prompt_for(st, post)
        assert buttons(card) == ["approve", "deny"] and "alice asks to run" in card["message"]

        own = await st.mm.click(None, card["id"], "approve", "alice")
        assert "cannot decide your own request" in own.ephemeral_text
        bob = await st.mm.click(None, card["id"], "approve", "bob")  # a shifter, not an expert
        assert "needs role expert" in bob.ephemeral_text
        assert sample_handlers.RUNS == [] and own.post is None and bob.post is None

        carol = await st.mm.click(None, card["id"], "approve", "carol")
        assert ran("sample.restart") == [("sample.restart", "alice", {"service": "web"})]
        assert "Approved by carol" in carol.post["message"] and buttons(carol.post) == []



async def _approval_card(st: Stack, text: str) -> tuple[dict[str, Any], str]:
    """An approval request asked with a prefixed message: a bot post with buttons."""
    post = await st.mm.post_as("alice", "ops", f"!{text}")
    card = await prompt_for(st, post)
    (request,) = await st.bot.requests.list_pending()
    return card, request.id


async def test_typed_approve_updates_the_request_post(make_bot) -> None:
    async with running(make_bot) as st:
        card, request_id = await _approval_card(st, "sample restart web")
        assert buttons(card) == ["approve", "deny"]
        # carol approves by typing in another thread, not by clicking
        await st.mm.post_as("carol", "ops", f"!approve {request_id}")
        patch = await st.mm.wait_for_request(f"PUT /api/v4/posts/{card['id']}/patch")
        assert patch.json["props"] == {"attachments": []}  # a patch, and the buttons go
        shown = await st.mm.wait_for(
            lambda: (p := st.mm.post(card["id"])) and "Approved by carol" in p["message"] and p)
        assert buttons(shown) == []
        assert ran("sample.restart") == [("sample.restart", "alice", {"service": "web"})]
        assert not st.mm.find_requests(f"PUT /api/v4/posts/{card['id']}")  # never a plain PUT


async def test_expired_request_post_says_so(make_bot) -> None:
    async with running(make_bot, overrides={"bot": {"approval_timeout_minutes": 0.001}}) as st:
        card, request_id = await _approval_card(st, "sample restart db")
        (request,) = await st.bot.requests.list_pending()
        await asyncio.sleep(max(0.0, (request.expires_at - db.utcnow()).total_seconds()) + 0.01)
        assert [e.id for e in await st.bot.expire_requests()] == [request_id]
        shown = await st.mm.wait_for(
            lambda: (p := st.mm.post(card["id"])) and "expired" in p["message"] and p)
        assert f"Request {request_id} expired" in shown["message"] and buttons(shown) == []
        assert sample_handlers.RUNS == []


async def test_clicked_request_post_is_updated_once(make_bot) -> None:
    async with running(make_bot) as st:
        card, _request_id = await _approval_card(st, "sample restart web")
        carol = await st.mm.click(None, card["id"], "approve", "carol")
        assert "Approved by carol" in carol.post["message"] and buttons(carol.post) == []
        # the click's answer is the only update: the decision listener leaves the post alone
        await st.adapter.clicked.updated_by_click(card["id"])
        await st.bot.settle()
        assert not st.mm.find_requests("PUT /api/v4/posts/*")

async def test_slash_command_confirmation_on_the_users_post(make_bot) -> None:
    async with running(make_bot) as st:
        result = await st.mm.invoke_command(None, "shiftbot", "sample wipe cache", "alice", "ops")
        assert result.json["response_type"] == "in_channel"  # buttons need a stored post
        prompt = result.posts[0]
        assert prompt["user_id"] == st.mm.user("alice").id and buttons(prompt)
        await st.mm.click(None, prompt["id"], "confirmask", "alice")
        done = await st.mm.click(None, prompt["id"], "confirm", "alice")
        assert "Confirmed by alice" in done.post["message"]
        assert ran("sample.wipe") == [("sample.wipe", "alice", {"target": "cache"})]


async def test_slow_decision_updates_the_post_later(make_bot) -> None:
    # approving a slow command: the click is answered at once, the result follows
    overrides = {"roles": {"shifter": {"approval": {"sample.slow": "expert"}}}}
    async with running(make_bot, overrides=overrides,
                       mattermost={"ack_budget_seconds": 0.2}) as st:
        post = await st.mm.post_as("alice", "ops", "!sample slow --seconds 1")
        card = await prompt_for(st, post)
        click = await st.mm.click(None, card["id"], "approve", "carol")
        assert "working on it" in click.post["message"] and buttons(click.post) == []
        assert "done slowly" not in [p["message"] for p in st.mm.ephemeral_posts("carol")]
        await st.mm.wait_for(lambda: "Approved by carol" in st.mm.post(card["id"])["message"],
                             timeout=5)
        assert ran("sample.slow")
        await st.ephemeral("carol", lambda p: p["message"] == "done slowly")


# ------------------------------------------------------------------------- identities


async def test_people_by_username_are_bound_and_unknown_names_warn(make_bot, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="bot.adapters.mattermost")
    overrides = {"people": {"erin": {"mattermost_username": "@Nobody"}}}
    async with running(make_bot, overrides=overrides) as st:
        alice = st.bot.directory.lookup("mattermost", st.mm.user("alice").id)
        assert alice is not None and alice.key == "alice"
        assert "no Mattermost user @nobody" in caplog.text
        assert st.adapter.alias_for(st.mm.channel("alerts").id) == "alerts"
        assert st.adapter.channel_ids["ops"] == st.mm.channel("ops").id
        channel = await st.bot.platforms["mattermost"].channel_for("alerts")
        ref = await st.bot.platforms["mattermost"].post(channel, Reply("disk full on node 7"))
        assert st.mm.post(ref.message_id)["message"] == "disk full on node 7"


async def test_unknown_people_may_only_run_what_anybody_may(make_bot) -> None:
    async with running(make_bot, users=("alice", "bob", "carol", "dave", "mallory")) as st:
        post = await st.mm.post_as("mallory", "ops", "!sample echo hi")
        denial = await st.ephemeral("mallory", lambda p: p["root_id"] == post["id"])
        assert "may not run" in denial["message"]
        who = await st.mm.post_as("mallory", "ops", "!whoami")
        answer = await st.ephemeral("mallory", lambda p: p["root_id"] == who["id"])
        assert st.mm.user("mallory").id in answer["message"]


# ------------------------------------------------------------------------- register-commands


def _register_config(make_config, mm: FakeMattermost, public_url: str,
                     tokens: list[str] | None = None) -> Any:
    return make_config({"bot": {"http": {"public_url": public_url}}, "mattermost": {
        "url": mm.url, "token": mm.bot_token, "team": mm.team.name,
        "commands": {"/shiftbot": None, "sample": "sample"}, "command_tokens": tokens or []}})


async def test_register_commands_creates_then_is_idempotent(make_config) -> None:
    async with FakeMattermost() as mm:
        out, err = io.StringIO(), io.StringIO()
        config = _register_config(make_config, mm, "https://bot.example.org/")
        assert await register_commands_cli(config, out=out, err=err) == 0, err.getvalue()
        commands = {c["trigger"]: c for c in mm.commands()}
        assert set(commands) == {"shiftbot", "sample"}
        assert commands["shiftbot"]["url"] == "https://bot.example.org/mattermost/command"
        assert commands["sample"]["auto_complete"] is True
        assert commands["sample"]["method"] == "P"
        for command in commands.values():
            assert f'- "{command["token"]}"  # /{command["trigger"]}' in out.getvalue()
        assert "lacks the token(s)" in out.getvalue()

        tokens = [commands["shiftbot"]["token"], commands["sample"]["token"]]
        again = io.StringIO()
        config = _register_config(make_config, mm, "https://bot.example.org", tokens)
        assert await register_commands_cli(config, out=again) == 0
        assert again.getvalue().count("unchanged") == 2 and "lacks" not in again.getvalue()
        assert [c["token"] for c in mm.commands()] == tokens

        moved = io.StringIO()
        config = _register_config(make_config, mm, "https://new.example.org", tokens)
        assert await register_commands_cli(config, out=moved) == 0
        assert moved.getvalue().count("updated") == 2
        assert {c["url"] for c in mm.commands()} == {"https://new.example.org/mattermost/command"}
        assert [c["token"] for c in mm.commands()] == tokens
        assert len(mm.find_requests("POST /api/v4/commands")) == 2


async def test_register_commands_explains_failures(make_config) -> None:
    async with FakeMattermost() as mm:
        err = io.StringIO()
        config = _register_config(make_config, mm, "https://bot.example.org")
        config.mattermost.token = type(config.mattermost.token)("wrong-token")
        assert await register_commands_cli(config, out=io.StringIO(), err=err) == 1
        assert "HTTP 401" in err.getvalue() and "Traceback" not in err.getvalue()
        config.bot.http.public_url = None
        assert await register_commands_cli(config, out=io.StringIO(), err=err) == 2


async def test_register_commands_cli_entry_point(make_config, tmp_path: Path) -> None:
    async with FakeMattermost() as mm:
        raw = {"bot": {"database": f"sqlite:///{tmp_path / 'cli.db'}",
                       "http": {"public_url": "https://bot.example.org"}},
               "mattermost": {"url": mm.url, "token": mm.bot_token, "team": mm.team.name}}
        path = tmp_path / "cli.yaml"
        path.write_text(yaml.safe_dump(raw))
        exe = Path(sys.executable).parent / "shiftbot"
        proc = await asyncio.create_subprocess_exec(
            str(exe), "mattermost", "register-commands", "--config", str(path),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, stderr.decode()
        token = mm.command("shiftbot")["token"]
        assert f'"{token}"  # /shiftbot' in stdout.decode()
        assert command_token("x") not in stdout.decode()


# ------------------------------------------------------------------------- shiftbot run


async def test_shiftbot_run_starts_and_stops_the_mattermost_adapter(make_config) -> None:
    from mattermost_harness import FAST, people_by_username

    from bot.runtime import serve

    async with FakeMattermost(users=("alice", "bob", "carol", "dave")) as mm:
        config = make_config({"bot": {"http": {"host": "127.0.0.1", "port": 0}},
                              "people": people_by_username("alice", "bob", "carol", "dave"),
                              "mattermost": {"url": mm.url, "token": mm.bot_token,
                                             "team": mm.team.name, **FAST}})
        stop = asyncio.Event()
        running = asyncio.create_task(serve(config, stop))
        try:
            await mm.wait_for_connection(1, timeout=10)
            post = await mm.post_as("alice", "ops", "!sample echo via shiftbot run --public")
            reply = await mm.wait_for_post("ops", user=mm.bot, timeout=5)
            assert reply["message"] == "via shiftbot run" and reply["root_id"] == post["id"]
        finally:
            stop.set()
            await asyncio.wait_for(running, 15)
        assert mm.connection_count == 0
