"""One settings path: both drivers build the pipeline's knobs from `Settings`, so a QORCH_*
variable means the same to `qorch run` as to `qorch operator`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from qorch import cli
from qorch.local import runner
from qorch.pipeline.job import PipelineSettings
from qorch.settings import Settings
from tests.support import REPO


def test_the_pipeline_defaults_are_the_settings_defaults() -> None:
    built = PipelineSettings.from_settings(Settings())
    default = PipelineSettings()
    for name in ("capacity_retry_seconds", "max_sampling_overhead", "watch_seconds"):
        assert getattr(built, name) == getattr(default, name), name
    assert default.fail_unverified is False


def test_qorch_run_reads_the_pipeline_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, Any] = {}

    async def capture(manifests: Any, *, prepare: Callable[[], PipelineSettings], **_: Any) -> int:
        seen["settings"] = prepare()  # as the run makes them once its agents are starting
        return 0

    monkeypatch.setattr(runner, "run", capture)
    monkeypatch.setenv("QORCH_CAPACITY_RETRY_SECONDS", "7")
    monkeypatch.setenv("QORCH_JOB_WATCH_SECONDS", "0.3")
    monkeypatch.setenv("QORCH_MAX_SAMPLING_OVERHEAD", "55")
    monkeypatch.setenv("QORCH_FAIL_UNVERIFIED", "true")

    assert cli.main(["run", str(REPO / "examples" / "quickstart")]) == 0

    settings = seen["settings"]
    assert (settings.capacity_retry_seconds, settings.watch_seconds) == (7.0, 0.3)
    assert (settings.max_sampling_overhead, settings.fail_unverified) == (55.0, True)


def test_a_malformed_variable_is_named_and_ends_the_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QORCH_AGENT_PORT", "eighty")

    assert cli.main(["crds", "--out", "/nonexistent"]) == 2

    assert "QORCH_AGENT_PORT" in capsys.readouterr().err


def test_the_agent_options_default_to_their_variables() -> None:
    env = Settings.from_env(
        {
            "QORCH_AGENT_HOST": "127.0.0.2",
            "QORCH_AGENT_PORT": "9999",
            "QORCH_TRUSTED_CLIENT_KEY_FILES": "a.pub:b.pub",
        }
    )
    args = cli.build_parser(env).parse_args(["qpu-agent"])

    assert (args.host, args.port, args.trusted_client_key) == (
        "127.0.0.2",
        9999,
        ["a.pub", "b.pub"],
    )
