"""Settings: names and defaults from DESIGN.md's operator interface."""

import pytest

from fsconf.config import load_settings
from fsconf.errors import ConfigError


def test_defaults_are_the_documented_ones():
    settings = load_settings({})
    assert settings.database_url == "sqlite:///fsconf.db"
    assert [(n.host, n.port, n.password) for n in settings.esl_nodes] == [
        ("127.0.0.1", 8021, "ClueCon")
    ]
    assert settings.outbound_listen == ("127.0.0.1", 8084)
    assert settings.http_listen == ("127.0.0.1", 8080)
    assert settings.public_url == "http://127.0.0.1:8080"
    assert settings.voice_method == "POST"


def test_several_esl_nodes_and_a_password_with_colons():
    settings = load_settings({"FSCONF_ESL": "10.0.0.1:8021:a:b, fs2:8022:x"})
    assert [(n.host, n.port, n.password) for n in settings.esl_nodes] == [
        ("10.0.0.1", 8021, "a:b"),
        ("fs2", 8022, "x"),
    ]


def test_secrets_are_not_in_repr():
    settings = load_settings(
        {"FSCONF_ESL": "h:1:s3cretpw", "FSCONF_AUTH_TOKEN": "tok3n", "FSCONF_ACCOUNT_SID": "AC1"}
    )
    text = repr(settings)
    assert "s3cretpw" not in text and "tok3n" not in text and "AC1" in text


@pytest.mark.parametrize(
    "env",
    [
        {"FSCONF_ESL": "host-without-port"},
        {"FSCONF_ESL": ""},
        {"FSCONF_HTTP_LISTEN": "nope"},
        {"FSCONF_OUTBOUND_LISTEN": "127.0.0.1:99999"},
        {"FSCONF_VOICE_METHOD": "PUT"},
        {"FSCONF_PUBLIC_URL": "ftp://x"},
    ],
)
def test_bad_values_are_clear_errors(env):
    with pytest.raises(ConfigError):
        load_settings(env)


def test_bad_esl_value_never_echoes_the_password():
    with pytest.raises(ConfigError) as info:
        load_settings({"FSCONF_ESL": "host:notaport:hunter2"})
    assert "hunter2" not in str(info.value)


def test_ini_file_sets_keys_and_environment_wins(tmp_path):
    ini = tmp_path / "fsconf.ini"
    ini.write_text(
        "[fsconf]\nFSCONF_DATABASE_URL = sqlite:///from-file.db\nFSCONF_VOICE_URL = http://a/b\n"
    )
    settings = load_settings({"FSCONF_VOICE_URL": "http://env/wins"}, config_file=str(ini))
    assert settings.database_url == "sqlite:///from-file.db"
    assert settings.voice_url == "http://env/wins"


def test_missing_ini_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError):
        load_settings({}, config_file=str(tmp_path / "absent.ini"))


def test_urls_with_credentials_are_not_in_repr():
    settings = load_settings(
        {
            "FSCONF_DATABASE_URL": "postgresql+psycopg://fsconf:S3cretPW@db/fsconf",
            "FSCONF_VOICE_URL": "https://user:V0icePW@app.example/voice?token=T0K",
        }
    )
    text = repr(settings)
    assert "S3cretPW" not in text and "V0icePW" not in text and "T0K" not in text


def test_log_url_keeps_only_scheme_host_and_path():
    from fsconf.redact import log_url

    assert log_url("https://user:pw@app.example:8443/cb/x?api_key=SECRET#f") == (
        "https://app.example:8443/cb/x"
    )
    assert log_url("") == "''" and log_url(None) == "-"
    assert log_url("http://[::1") == "<unparsable URL>"
