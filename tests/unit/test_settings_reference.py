"""The README's configuration reference: generated from clipline.settings, and committed fresh."""

import re
import subprocess
import sys
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from clipline.settings import Settings
from clipline.settings_reference import BEGIN, END, main, markdown, section, with_fresh_reference

README = Path(__file__).parents[2] / "README.md"
REGENERATE = "python -m clipline.settings_reference README.md"
_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def table_rows(text: str) -> list[tuple[str, str, str]]:
    """(setting, default, meaning) of every table row naming a setting."""
    rows = []
    for line in text.splitlines():
        cells = [cell.strip() for cell in _UNESCAPED_PIPE.split(line)]
        if len(cells) == 5 and cells[1].startswith("`") and cells[1] != "---":
            rows.append((cells[1].strip("`"), cells[2], cells[3]))
    return rows


def reference_of(document: str) -> str:
    start = document.index(BEGIN)
    return document[start : document.index(END, start) + len(END)]


class Secretive(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_")

    # pydantic does not validate defaults: a SecretStr field may hold a plain string.
    plain_default: SecretStr = Field("sk-plain-0001", description="a token | with a pipe")
    wrapped_default: SecretStr | None = Field(SecretStr("sk-wrapped-0002"), description="another token")
    overridden: SecretStr = Field(
        "sk-override-0003", description="a third", json_schema_extra={"default_text": "sk-override-0003"}
    )
    absent: SecretStr | None = Field(None, description="unset means no token is sent")


def test_committed_readme_reference_is_the_generated_one():
    document = README.read_text(encoding="utf-8")

    assert reference_of(document) == markdown(), f"README.md's configuration reference is stale: run `{REGENERATE}`"


def test_every_setting_appears_exactly_once():
    rows = table_rows(reference_of(README.read_text(encoding="utf-8")))

    names = [setting for setting, _, _ in rows]
    assert sorted(names) == sorted(f"CLIPLINE_{field.upper()}" for field in Settings.model_fields)
    assert len(names) == len(set(names))


def test_rows_follow_the_declaration_order_within_each_group():
    rows = table_rows(markdown())

    declared = [f"CLIPLINE_{field.upper()}" for field in Settings.model_fields]
    shown = [setting for setting, _, _ in rows]
    assert shown == sorted(shown, key=declared.index)


def test_defaults_read_as_they_are_written_in_the_environment():
    defaults = {setting: default for setting, default, _ in table_rows(markdown())}

    assert defaults["CLIPLINE_MAX_CLIP_SECONDS"] == "`600`"
    assert defaults["CLIPLINE_TRANSCRIBE_POLL_SECONDS"] == "`5`"
    assert defaults["CLIPLINE_ALLOW_PRIVATE_SOURCES"] == "`false`"
    assert defaults["CLIPLINE_SOURCE_ALLOWLIST"] == "empty"
    assert defaults["CLIPLINE_FFMPEG"] == "unset"
    assert defaults["CLIPLINE_DATA_DIR"] == "`./data`"
    assert defaults["CLIPLINE_SOURCE_PORTS"] == "`80,443`"
    assert defaults["CLIPLINE_MAX_SOURCE_BYTES"].startswith("20 GiB")


def test_meanings_come_from_the_field_descriptions():
    meanings = {setting: meaning for setting, _, meaning in table_rows(markdown())}

    for field, info in Settings.model_fields.items():
        assert info.description, f"{field} has no description"
        assert meanings[f"CLIPLINE_{field.upper()}"] == " ".join(info.description.split()).replace("|", "\\|")


def test_a_secret_default_never_shows():
    # Given settings whose secrets have defaults, one even asking to be shown
    # When the reference is generated
    text = markdown(Secretive)

    # Then no secret's value appears, and an unset one still says so
    assert "sk-" not in text
    defaults = {setting: default for setting, default, _ in table_rows(text)}
    assert defaults == {
        "DEMO_PLAIN_DEFAULT": "set, not shown",
        "DEMO_WRAPPED_DEFAULT": "set, not shown",
        "DEMO_OVERRIDDEN": "set, not shown",
        "DEMO_ABSENT": "unset",
    }


def test_a_pipe_in_a_description_is_escaped():
    rows = table_rows(markdown(Secretive))

    assert ("DEMO_PLAIN_DEFAULT", "set, not shown", "a token \\| with a pipe") in rows


def test_the_rewrite_keeps_the_text_outside_the_markers_byte_for_byte():
    # Given a stale reference between text with CRLF, trailing spaces, non-ASCII and stray markers
    before = f"# Title\r\n\ntrailing spaces   \n| a | table |\n{END} quoted before the reference \u00e9\n"
    after = f"\n\n  {END} quoted after it \u2014 and {BEGIN}, with no final newline"
    document = before + BEGIN + "\n| `CLIPLINE_GONE` | `1` | stale |\n" + END + after

    # When it is rewritten
    fresh = with_fresh_reference(document)

    # Then only the reference changed
    assert fresh == before + markdown() + after
    assert "CLIPLINE_GONE" not in fresh


def test_the_command_rewrites_only_the_reference_in_the_file(tmp_path):
    # Given a file with CRLF line ends around a stale reference
    before, after = "intro\r\n\r\n".encode(), "\r\nthe end \u00e9\r\n".encode()
    target = tmp_path / "README.md"
    target.write_bytes(before + f"{BEGIN}\r\nstale\r\n{END}".encode() + after)

    # When the command rewrites it
    assert main([str(target)]) == 0

    # Then the bytes around the reference, and the marker lines' own line ends, are untouched
    assert target.read_bytes() == before + f"{BEGIN}\r\n{section()}{END}".encode() + after


def test_check_fails_on_a_stale_copy_and_the_rewrite_fixes_it(tmp_path, capsys):
    # Given a copy of the README whose table lost a row
    stale = tmp_path / "README.md"
    document = README.read_text(encoding="utf-8")
    row = next(line for line in document.splitlines() if line.startswith("| `CLIPLINE_MAX_CLIP_SECONDS` |"))
    stale.write_text(document.replace(row + "\n", ""), encoding="utf-8")
    stale_bytes = stale.read_bytes()

    # When checked, Then it fails, says what to run and changes nothing
    assert main(["--check", str(stale)]) == 1
    assert "stale" in capsys.readouterr().err
    assert stale.read_bytes() == stale_bytes

    # When rewritten, Then it is the committed README again, and the check passes
    assert main([str(stale)]) == 0
    assert stale.read_text(encoding="utf-8") == with_fresh_reference(document)
    assert main(["--check", str(stale)]) == 0


def test_check_refuses_a_file_without_markers(tmp_path, capsys):
    plain = tmp_path / "plain.md"
    plain.write_text("# no reference here\n", encoding="utf-8")

    assert main(["--check", str(plain)]) != 0
    assert BEGIN in capsys.readouterr().err
    assert plain.read_text(encoding="utf-8") == "# no reference here\n"


def test_the_module_runs_as_a_command(tmp_path):
    stale = tmp_path / "README.md"
    stale.write_text(f"intro\n{BEGIN}\n{END}\n", encoding="utf-8")

    result = subprocess.run(
        [sys.executable, "-m", "clipline.settings_reference", "--check", str(stale)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert f"regenerate it with `python -m clipline.settings_reference {stale}`" in result.stderr
