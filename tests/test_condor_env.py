"""No chat secret reaches the HTCondor worker, nor (through getenv) a job ad; check-config says so.

The secrets are real values in the test process's environment and in the config: the worker is
a real process (its /proc/<pid>/environ is read), and the demo schedd builds each job's
``Environment`` from the submitting process's environment as condor_submit does, so what a
real pool would store is what the ads here hold.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import htcondor2
import pytest
import yaml
from fakes.condor import GWCELERY_SUB, demo_spec

from bot.cli import main as cli_main
from bot.condor import ops, submitdesc
from bot.condor.backend import DemoBackend
from bot.condor.configcheck import check_pools
from bot.condor.demo import DemoSchedd
from bot.condor.errors import CondorConfigError
from bot.condor.models import DEFAULT_GETENV_ALLOW
from bot.condor.service import CondorService, pool_specs
from bot.condor.submitdesc import restrict_description, restrict_getenv
from bot.condor.worker import worker_environment
from bot.config import parse_config

REPO = Path(__file__).resolve().parent.parent
SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-env-secret-0001",
    "SLACK_SIGNING_SECRET": "signing-env-secret-0002",
    "MATTERMOST_TOKEN": "mm-env-secret-0003",
    "SHIFTBOT_ACTION_SECRET": "action-env-secret-0004",
    "MY_API_KEY": "api-key-env-secret-0005",
    # Credentials the bot's host may have: the worker takes them from the pool config only.
    "X509_USER_PROXY": "/tmp/x509-env-secret-0006",
    "BEARER_TOKEN_FILE": "/tmp/bearer-env-secret-0007",
}
# Config secrets that do not come from the environment (read from *_file keys).
FILE_SECRETS = {"app_token": "xapp-file-secret-0008", "token": "mm-file-secret-0009"}
# A knob the pool's worker needs (so it is in the worker's environment), but that getenv must
# not copy into job ads.
KNOB_SECRET = "condor-knob-secret-0010"
ALL_SECRETS = [*SECRETS.values(), *FILE_SECRETS.values(), KNOB_SECRET]
WORKER_OWN = {"PYTHONPATH", "PYTHONUNBUFFERED"}


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LC_TIME", "C")  # inherited: not a secret, shows the LC_* rule


def allowed_in_worker(name: str, pool_environment: dict[str, str]) -> bool:
    return (name in {"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "LD_LIBRARY_PATH",
                     "CONDOR_CONFIG"} | WORKER_OWN | set(pool_environment)
            or name.startswith(("LC_", "_CONDOR_", "_condor_")))


def demo_gwcelery_pool() -> dict[str, Any]:
    """config/demo.yaml's gwcelery pool (its real description, getenv = true), quick to empty."""
    demo = yaml.safe_load((REPO / "config/demo.yaml").read_text())
    pool: dict[str, Any] = demo["condor"]["pools"]["gwcelery"]
    assert "getenv = true" in pool["submit"]["gwcelery"]["text"]
    pool.update(demo_jobs=80, demo_remove_delay_seconds=0,
                environment={"_CONDOR_SHIFTBOT_TEST_KNOB": KNOB_SECRET})
    return pool


def config_with_secrets(tmp_path: Path) -> Any:
    for key, value in FILE_SECRETS.items():
        (tmp_path / key).write_text(value + "\n")
    raw = {
        "slack": {"bot_token": "${SLACK_BOT_TOKEN}", "app_token_file": "app_token",
                  "signing_secret": "${SLACK_SIGNING_SECRET}"},
        "mattermost": {"url": "https://mm.example.org", "team": "t", "token_file": "token",
                       "action_secret": "${SHIFTBOT_ACTION_SECRET}"},
        "condor": {"pools": {"gwcelery": demo_gwcelery_pool()}, "resubmit_poll_seconds": 0.1},
    }
    return parse_config(raw, tmp_path)


def environment_names(environment: str) -> set[str]:
    """Names in an ``Environment`` attribute (V2: space separated, single-quoted words)."""
    return {word.partition("=")[0] for word in shlex.split(environment)}


# ------------------------------------------------------------------ the worker's environment


def test_worker_environment_is_an_allow_list(secrets: None) -> None:
    spec = demo_spec(environment={"_CONDOR_SEC_TOKEN_DIRECTORY": "/etc/tokens",
                                  "BEARER_TOKEN_FILE": "/etc/pool-bearer"})
    env = worker_environment(spec)
    assert not {n for n in env if not allowed_in_worker(n, spec.environment)}
    assert not [v for v in ALL_SECRETS if any(v in value for value in env.values())]
    assert env["BEARER_TOKEN_FILE"] == "/etc/pool-bearer"  # configured for the pool: passed
    assert env["LC_TIME"] == "C" and env["PYTHONUNBUFFERED"] == "1"


@pytest.mark.parametrize("name", ["LC_SHIFTBOT_TOKEN", "_condor_slack_token", "PATH"])
def test_a_configured_secret_never_reaches_the_worker(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      name: str) -> None:
    """Inherited names are filtered by what they hold too: ssh's 'SendEnv LC_*' carries tokens
    to hosts, so a chat secret may live in an LC_* (or _CONDOR_*, or any passed) variable. The
    value, even inside a longer one, stays behind; the pool's own environment: is kept."""
    token = "xoxb-secret-in-an-inherited-name-4711"
    monkeypatch.setenv(name, f"/x:{token}:/y")
    monkeypatch.setenv("SHIFTBOT_TEST_TOKEN", token)
    pool = {**demo_gwcelery_pool(), "environment": {"_CONDOR_SCITOKENS_FILE": f"${{{name}}}"}}
    config = parse_config({
        "slack": {"bot_token": "${SHIFTBOT_TEST_TOKEN}", "signing_secret": "s" * 32,
                  "mode": "http"},
        "condor": {"pools": {"gwcelery": pool}}}, tmp_path)
    env = worker_environment(pool_specs(config.condor)["gwcelery"])
    # what the operator gives the worker on purpose is passed as configured; nothing else
    assert env.pop("_CONDOR_SCITOKENS_FILE") == f"/x:{token}:/y"
    assert name not in env and not [v for v in env.values() if token in v]


async def test_real_worker_process_has_no_secret(secrets: None, tmp_path: Path) -> None:
    config = config_with_secrets(tmp_path)
    service = CondorService(config.condor, tmp_path)
    try:
        pid = (await service.ping("gwcelery"))["pid"]
        environ = Path(f"/proc/{pid}/environ")
        if not environ.exists():
            pytest.skip("needs /proc")
        entries = [e.decode() for e in environ.read_bytes().split(b"\0") if e]
    finally:
        await service.close()
    names = {entry.partition("=")[0] for entry in entries}
    pool_environment = config.condor.pools["gwcelery"].environment
    assert {n for n in names if not allowed_in_worker(n, pool_environment)} == set()
    leaked = [s for s in ALL_SECRETS if s != KNOB_SECRET and any(s in e for e in entries)]
    assert leaked == []
    assert f"_CONDOR_SHIFTBOT_TEST_KNOB={KNOB_SECRET}" in entries  # the pool's knob is there


# ------------------------------------------------------------------ job ads


async def test_submitted_job_ads_carry_no_secret(secrets: None, tmp_path: Path) -> None:
    """config/demo.yaml's description (getenv = true) through the service and a real worker."""
    config = config_with_secrets(tmp_path)
    service = CondorService(config.condor, tmp_path)
    try:
        outcome = await service.resubmit("gwcelery", "gwcelery")
        clusters = ", ".join(map(str, outcome.submitted.clusters))
        ads = await service.worker("gwcelery").call(
            "ads", {"constraint": f"member(ClusterId, {{{clusters}}})"})
    finally:
        await service.close()
    assert len(ads) == outcome.submitted.jobs == 18
    text = repr(ads)
    assert [s for s in ALL_SECRETS if s in text] == []
    assert [n for n in SECRETS if n in text] == []
    for ad in ads:
        names = environment_names(ad["Environment"])
        assert names <= set(DEFAULT_GETENV_ALLOW), names
        assert "PATH" in names  # getenv was honoured, restricted to the allow-list


def test_the_demo_copies_the_environment_like_condor_submit(secrets: None) -> None:
    """The fake would leak an unrestricted getenv: the rewrite is what keeps secrets out."""
    schedd = DemoSchedd()
    result = schedd.submit(htcondor2.Submit("executable = /bin/true\ngetenv = True\n"
                                            'environment = "A=1 B=\'x y\'"\nqueue\n'))
    ad = schedd.query(f"ClusterId == {result.cluster()}", ["Environment"])[0]
    assert f"SLACK_BOT_TOKEN={SECRETS['SLACK_BOT_TOKEN']}" in ad["Environment"]
    assert {"A", "B", "PATH", "MY_API_KEY"} <= environment_names(ad["Environment"])
    listed = schedd.submit(htcondor2.Submit("getenv = path, *_SECRET\nqueue\n"))
    ad = schedd.query(f"ClusterId == {listed.cluster()}", ["Environment"])[0]
    assert environment_names(ad["Environment"]) == {"PATH", "SLACK_SIGNING_SECRET",
                                                    "SHIFTBOT_ACTION_SECRET"}


def test_ops_submit_restricts_getenv_in_text_and_attributes(secrets: None) -> None:
    backend = DemoBackend(demo_spec(demo_jobs=0, getenv_allow=("PATH",)))
    where = {"initialdir": "/home/emfollow/gwcelery", "GetEnv": "PATH, MY_API_KEY, *TOKEN*"}
    outcome = ops.submit(backend, "gwcelery", GWCELERY_SUB, where, "gwcelery", None, False)
    ads = backend.schedd().query("true", ["Environment"])
    assert len(ads) == outcome.jobs == 3
    assert all(environment_names(ad["Environment"]) == {"PATH"} for ad in ads)
    assert not [s for s in ALL_SECRETS if s in repr([str(ad) for ad in ads])]


async def test_submitting_a_missing_file_is_a_one_line_error(tmp_path: Path) -> None:
    raw = {"condor": {"pools": {"p": {"backend": "demo",
                                      "submit": {"s": {"file": "nowhere.sub"}}}}}}
    service = CondorService(parse_config(raw, tmp_path).condor, tmp_path)
    with pytest.raises(CondorConfigError, match=r"^submit description s: cannot read .*nowhere"):
        await service.submit("p", "s")
    await service.close()


# ------------------------------------------------------------------ the rewrite, unit by unit

ALLOW = ("PATH", "HOME")


@pytest.mark.parametrize(("value", "submitted", "everything", "dropped"), [
    ("true", "PATH, HOME", True, ()),
    (" TRUE   # copy it all ", "PATH, HOME", True, ()),
    ("True", "PATH, HOME", True, ()),
    ("1", "PATH, HOME", True, ()),
    ("yes", "PATH, HOME", True, ()),
    ("path; home", "PATH, HOME", False, ()),
    ("PATH, MY_API_KEY", "PATH", False, ("MY_API_KEY",)),
    ("*TOKEN*", "false", False, ("*TOKEN*",)),
    ("PATH*", "false", False, ("PATH*",)),
    ("!SLACK_*", "PATH, HOME", True, ()),
    ("!PA*", "HOME", True, ()),
    ("$(GETENV)", "false", False, ("$(GETENV)",)),
    ("1 == 1", "false", False, ("1 == 1",)),
])
def test_restrict_getenv(value: str, submitted: str, everything: bool,
                         dropped: tuple[str, ...]) -> None:
    rewrite = restrict_getenv(value, ALLOW)
    assert (rewrite.value, rewrite.everything, rewrite.dropped) == (submitted, everything,
                                                                     dropped)


@pytest.mark.parametrize("value", ["false", " FALSE ", "0"])
def test_false_is_left_alone(value: str) -> None:
    assert not restrict_getenv(value, ALLOW).changed


@pytest.mark.parametrize("value", ["no", "Off", "false # not now"])
def test_other_false_spellings_become_false(value: str) -> None:
    rewrite = restrict_getenv(value, ALLOW)
    assert rewrite.value == "false" and not rewrite.worth_a_warning


def test_nothing_allowed_means_false() -> None:
    assert restrict_getenv("true", ()).value == "false"


def test_every_split_part_and_the_attributes_are_rewritten() -> None:
    text = ("universe = local\ngetenv = true\nqueue\n"
            "GetEnv=True\narguments = two\nqueue 2\n"
            "get_env = TRUE\nqueue\n")
    parts = submitdesc.split(text)
    new_parts, attributes, rewrites = restrict_description(
        parts, {"getenv": "yes", "GETENV": "HOME, MY_API_KEY", "initialdir": "/x"}, ALLOW)
    assert len(new_parts) == 3 and len(rewrites) == 1 + 2 + 3 + 2
    for part in new_parts:
        values = [line.partition("=")[2].strip() for line in part.splitlines()
                  if line.partition("=")[0].strip().lower() in {"getenv", "get_env"}]
        assert values and set(values) == {"PATH, HOME"}
    assert attributes == {"getenv": "PATH, HOME", "GETENV": "HOME", "initialdir": "/x"}


def test_the_submit_object_is_checked_last() -> None:
    description = htcondor2.Submit("executable = /bin/true\nGetEnv = true\nqueue\n")
    ops._enforce_getenv(description, ALLOW)
    assert [description[k] for k in description if k.lower() == "getenv"] == ["PATH, HOME"]


# ------------------------------------------------------------------ check-config


def condor_raw(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "present.sub").write_text("executable = /bin/true\ninitialdir = /x\n"
                                          "getenv = PATH, *TOKEN*\nqueue\n")
    return {
        "bot": {"handlers": ["handlers.builtin"], "database": f"sqlite:///{tmp_path}/b.db"},
        "condor": {"pools": {"gwcelery": demo_gwcelery_pool(), "other": {
            "backend": "demo",
            "submit": {
                "missing": {"file": "missing.sub"},
                "present": {"file": "present.sub"},
                "attrs": {"text": "executable = /bin/true\nqueue\n",
                          "attributes": {"initialdir": "/x", "GetEnv": "True"}},
            }}}},
    }


def test_check_pools_names_key_paths(tmp_path: Path) -> None:
    problems = check_pools(parse_config(condor_raw(tmp_path), tmp_path))
    found = {(p.path, p.severity) for p in problems}
    assert found == {
        ("condor.pools.gwcelery.submit.gwcelery.text", "warning"),
        ("condor.pools.other.submit.missing.file", "error"),
        ("condor.pools.other.submit.present.file", "warning"),
        ("condor.pools.other.submit.attrs.attributes.GetEnv", "warning"),
    }
    text = "\n".join(map(str, problems))
    assert ("warning: condor.pools.gwcelery.submit.gwcelery.text: getenv = true would copy "
            "shiftbot's whole environment into the job ads") in text
    assert "submitted as getenv = PATH, HOME, LANG, TZ" in text
    assert "dropped: *TOKEN*; submitted as getenv = PATH" in text
    assert "condor.pools.other.submit.missing.file: cannot read " in text


def test_check_config_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = condor_raw(tmp_path)
    path = tmp_path / "shiftbot.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert cli_main(["check-config", "--config", str(path)]) == 1
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    assert "condor.pools.other.submit.missing.file: cannot read" in out.out
    assert "warning: condor.pools.gwcelery.submit.gwcelery.text: getenv = true" in out.out
    assert "1 problem(s) found." in out.out  # the warnings do not count as problems
    del raw["condor"]["pools"]["other"]["submit"]["missing"]
    path.write_text(yaml.safe_dump(raw))
    assert cli_main(["check-config", "--config", str(path)]) == 0  # warnings only
    out = capsys.readouterr()
    assert "warning: condor.pools.other.submit.attrs.attributes.GetEnv" in out.out
    assert "Configuration OK." in out.out
