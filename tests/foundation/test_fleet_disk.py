"""`disk` in fleet.toml (issue 15): the size a Docker bot's code/ and state/
may fill, in binary units, "off" for none; a bad value is one line that
names the bot, the key and the form expected, and fleet.toml is left as it
was."""

from __future__ import annotations

import pytest

from cftui.errors import FleetError
from cftui.fleet import DEFAULT_DISK_BYTES, BotConfig, FleetHome, parse_disk
from cftui.sizes import format_size, parse_size


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4GiB", 4 << 30),
        ("4G", 4 << 30),
        ("4GB", 4 << 30),  # binary, as Docker reads memory sizes
        ("512MiB", 512 << 20),
        ("512m", 512 << 20),
        ("1.5GiB", 3 << 29),
        (" 2 TiB ", 2 << 40),
        ("33554432", 32 << 20),
    ],
)
def test_disk_sizes_are_read_in_binary_units(text: str, size: int) -> None:
    assert parse_disk(text) == size
    assert parse_size(format_size(size)) == size  # written back unchanged


def test_disk_off_means_no_bound() -> None:
    assert parse_disk("off") is None


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("lots", "is not a size"),
        ("", "is not a size"),
        ("-1GiB", "is not a size"),
        ("4 GiB of it", "is not a size"),
        ("GiB", "is not a size"),
        ("4PiB", "is not a size"),
        ("1MiB", "too small: at least 32MiB"),
        (4, "must be a size in quotes"),
        (True, "must be a size in quotes"),
        ("x" * 10_000, "is not a size"),
    ],
)
def test_bad_disk_values_are_one_line_naming_the_bot(
    home: FleetHome, cli, value: object, says: str
) -> None:
    home.add_bot(BotConfig(name="bot1"))
    text = home.fleet_toml.read_text().replace('disk = "4GiB"', f"disk = {_toml(value)}")
    home.fleet_toml.write_text(text)
    with pytest.raises(FleetError) as err:
        home.bot("bot1")
    message = str(err.value)
    assert message.startswith("fleet.toml: [bots.bot1]: disk")
    assert says in message and "\n" not in message and len(message) < 200
    result = cli("list")
    assert result.code == 1 and result.err.count("\n") == 1 and says in result.err
    assert home.fleet_toml.read_text() == text


def test_a_new_docker_bot_says_its_disk_and_a_lima_bot_has_none(home: FleetHome) -> None:
    home.add_bot(BotConfig(name="bot1"))
    home.add_bot(BotConfig(name="bot2", runtime="lima", gateway_port=18802))
    text = home.fleet_toml.read_text()
    assert text.count("disk = ") == 1 and f'disk = "{format_size(DEFAULT_DISK_BYTES)}"' in text
    assert home.bot("bot1").disk_bytes == DEFAULT_DISK_BYTES
    home.update_bot("bot1", disk="off")
    assert home.bot("bot1").disk_bytes is None


def test_a_table_without_disk_gets_the_default(home: FleetHome) -> None:
    home.root.mkdir(parents=True)
    home.fleet_toml.write_text('[bots.old]\nruntime = "docker"\n')
    assert home.bot("old").disk_bytes == DEFAULT_DISK_BYTES


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"' + str(value) + '"'
