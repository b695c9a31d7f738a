"""Settings precedence: flags over environment over the TOML file over defaults."""

from pathlib import Path

import pytest

from imsearch.core.settings import load_settings, read_config_file, settings_from_command_line
from services.gateway.settings import GatewaySettings


def test_flags_beat_environment_beat_file_beat_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "imsearch.toml"
    config.write_text('[gateway]\nrerank_factor = 8\nadd_batch = 4\nmodel = "from-file"\n')
    monkeypatch.setenv("IMSEARCH_GATEWAY_ADD_BATCH", "6")
    monkeypatch.setenv("IMSEARCH_GATEWAY_MODEL", "from-env")
    section = read_config_file(config)["gateway"]
    settings = load_settings(GatewaySettings, section, model="from-flag", listen=None)
    assert settings.model == "from-flag"
    assert settings.add_batch == 6
    assert settings.rerank_factor == 8
    assert settings.listen == "127.0.0.1:50050"  # a flag left unset keeps the default


def test_config_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "other.toml"
    config.write_text("[index]\nlsh_probes = 12\n")
    monkeypatch.setenv("IMSEARCH_CONFIG", str(config))
    assert read_config_file(None) == {"index": {"lsh_probes": 12}}
    monkeypatch.delenv("IMSEARCH_CONFIG")
    assert read_config_file(None) == {}


def test_command_line_flags_beat_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMSEARCH_GATEWAY_ADD_BATCH", "6")
    monkeypatch.setenv("IMSEARCH_GATEWAY_RERANK_FACTOR", "5")
    section = {"add_batch": 4, "rerank_factor": 8, "model": "from-file"}
    settings = load_settings(GatewaySettings, section, ["--add-batch", "9", "--metrics-port", "-1"])
    assert (settings.add_batch, settings.rerank_factor, settings.model) == (9, 5, "from-file")
    assert settings.metrics_port == -1


def test_service_settings_from_command_line_read_the_config_flag(tmp_path: Path) -> None:
    config = tmp_path / "imsearch.toml"
    config.write_text('[gateway]\nmodel = "from-file"\nadd_batch = 3\n[index]\nlsh_probes = 12\n')
    settings = settings_from_command_line(
        GatewaySettings, "gateway", ["--config", str(config), "--add-batch=7"]
    )
    assert (settings.model, settings.add_batch) == ("from-file", 7)
    with pytest.raises(SystemExit):
        settings_from_command_line(GatewaySettings, "gateway", ["--no-such-setting", "1"])
