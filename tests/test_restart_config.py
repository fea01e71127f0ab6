"""The restart section's cross-checks (check_config) and the demo's restart target, through the
real CLI: check-config passes, a shifter's request waits for an expert, an expert's confirmed
restart runs scripts/demo-restart.sh."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import deep_merge
from test_restart_support import REPO, command_target, echo_program, restart_config

from handlers import restart

# What config/demo.yaml gets (docs/restart.md, "The demo").
DEMO: dict[str, Any] = {
    "roles": {
        "viewer": {"allow": ["help", "whoami", "why", "who-can", "condor.q", "condor.analyze",
                             "condor.pools", "restart"]},
        "shifter": {"allow": ["condor.hold", "condor.release", "condor.rm", "condor.resubmit",
                              "audit", "announce", "notices.pending", "restart.*"],
                    "approval": {"condor.rm": "expert", "condor.resubmit": "expert",
                                 "restart.*": "expert"}},
        "expert": {"allow": ["condor.*", "audit", "restart.*"]},
    },
    "restart": {
        "channel": "ops",
        "cooldown_seconds": 60,
        "targets": {
            "gwcelery-demo": {
                "type": "command",
                "description": "pretend to restart a GWCelery component "
                               "(scripts/demo-restart.sh only prints)",
                "argv": ["../scripts/demo-restart.sh", "{component}"],
                "params": {"component": {"choices": ["worker", "beat", "flower"],
                                         "default": "worker"}},
                "timeout_seconds": 30,
            },
        },
    },
}


def problems(make_config: Any, raw: dict[str, Any]) -> list[str]:
    from bot.features import bind_sections
    from bot.registry import Registry

    config = make_config(raw)
    registry = Registry().load(raw["bot"]["handlers"])
    assert bind_sections(config, registry.sections) == []
    return [str(p) for p in restart.check_config(config)]


def test_a_good_config_has_no_problems(make_config: Any, tmp_path: Path) -> None:
    raw = restart_config({"demo": command_target(echo_program(tmp_path))})
    assert problems(make_config, raw) == []


@pytest.mark.parametrize(("change", "says"), [
    ({"restart": {"channel": "nowhere"}}, "restart.channel: unknown channel alias 'nowhere'"),
    ({"restart": {"targets": {"demo": {"argv": ["/no/such/program", "{component}"]}}}},
     "restart.targets.demo.argv[0]: '/no/such/program' is not an executable file"),
    ({"restart": {"targets": {"demo": {"channel": "x"}}}}, "unknown channel alias 'x'"),
    ({"restart": {"targets": {"deploy": {"type": "gitlab_pipeline", "ref": "main"}}}},
     "gitlab.url: needed by restart.targets.deploy"),
    ({"restart": {"targets": {"deploy": {"type": "gitlab_pipeline", "ref": "main"}}},
      "gitlab": {"url": "https://git.example.org", "project": "a/b"}},
     "gitlab.token: needed to follow the pipelines"),
    ({"restart": {"targets": {"jobs": {"type": "condor_resubmit", "submit": "x"}}}},
     "restart.targets.jobs.pool: unknown HTCondor pool"),
    ({"roles": {"shifter": {"allow": ["restart.dmeo"]}}},
     "roles.shifter.allow[0]: no restart target 'dmeo'"),
])
def test_problems_name_their_key(make_config: Any, tmp_path: Path, change: dict[str, Any],
                                 says: str) -> None:
    raw = deep_merge(restart_config({"demo": command_target(echo_program(tmp_path))}), change)
    found = problems(make_config, raw)
    assert any(says in p for p in found), found


def demo_config(tmp_path: Path) -> Path:
    raw = yaml.safe_load((REPO / "config/demo.yaml").read_text())
    raw = deep_merge(raw, DEMO)
    raw["bot"]["database"] = f"sqlite:///{tmp_path / 'demo.db'}"
    # The demo's relative paths are relative to config/: keep the file there in spirit.
    for target in raw["restart"]["targets"].values():
        target["argv"][0] = str(REPO / "scripts/demo-restart.sh")
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args, "--config", str(config)],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ},
                          timeout=120)


def test_the_demo_target_through_the_cli(tmp_path: Path) -> None:
    config = demo_config(tmp_path)
    checked = cli(config, "check-config")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    asked = subprocess.run([sys.executable, "-m", "bot.cli", "console", "--config",
                            str(config), "--as", "carol", "-c",
                            "restart gwcelery-demo component=beat"],
                           capture_output=True, text=True, cwd=REPO, timeout=120)
    assert asked.returncode == 3, asked.stdout + asked.stderr  # waiting for confirmation
    request = re.search(r"request ([a-z0-9]{6})", asked.stdout).group(1)
    done = subprocess.run([sys.executable, "-m", "bot.cli", "console", "--config",
                           str(config), "--as", "carol", "-c", f"confirm {request}"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "gwcelery beat restarted" in done.stdout
    listed = subprocess.run([sys.executable, "-m", "bot.cli", "console", "--config",
                             str(config), "--as", "alice", "-c", "restart list"],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert "by carol: success" in listed.stdout, listed.stdout + listed.stderr
