"""Which conference configuration the FakeSwitch models.

By default it stands in for a FreeSWITCH that runs fsconf's own configuration
(``freeswitch/autoload_configs/conference.conf.xml``), whose fsconf profile has no TTS engine;
``profiles="captured"`` gives the captured switch's, whose fsconf profile had flite (B4).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from fsconf.esl import commands
from fsconf.testing import FakeSwitch
from tests.fakeswitch.client import Client
from tests.fakeswitch.test_conference import ALICE, member_id, originate

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_XML = ROOT / "freeswitch/autoload_configs/conference.conf.xml"
# The shipped file leaves these to the switch's globals; the captured switch resolved them.
GLOBALS = {"domain", "caller-id-name", "caller-id-number"}


def _shipped_params() -> dict[str, str]:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    tree = etree.parse(str(SHIPPED_XML), parser)
    profile = tree.find(".//profiles/profile[@name='fsconf']")
    assert profile is not None
    return {p.get("name"): p.get("value") for p in profile.iter("param")}


@pytest.fixture
def shipped() -> Iterator[FakeSwitch]:
    switch = FakeSwitch(time_scale=1.0).start()
    yield switch
    switch.stop()


def test_default_fsconf_profile_is_the_shipped_one(shipped: FakeSwitch) -> None:
    params = _shipped_params()
    modelled = shipped.profiles["fsconf"]
    assert set(modelled) == set(params)
    assert {k: v for k, v in modelled.items() if k not in GLOBALS} == {
        k: v for k, v in params.items() if k not in GLOBALS
    }
    # what `fsconf doctor` reads agrees with what the rooms use
    client = Client.connect(shipped.address)
    try:
        xml = client.api("xml_locate configuration configuration name conference.conf")
    finally:
        client.close()
    fsconf_section = xml[xml.index('<profile name="fsconf">'):]
    fsconf_section = fsconf_section[: fsconf_section.index("</profile>")]
    assert "tts-engine" not in fsconf_section and 'name="energy-level"' in fsconf_section


def test_captured_profiles_keep_the_tts_engine() -> None:
    switch = FakeSwitch(profiles="captured")
    assert switch.profiles["fsconf"]["tts-engine"] == "flite"
    with pytest.raises(ValueError, match="profiles"):
        FakeSwitch(profiles="vanilla")


def test_first_member_on_the_shipped_profile_hears_no_tts(shipped: FakeSwitch) -> None:
    """Real time (time_scale 1.0): with the captured profile a play to the first member would
    wait ~3.7 s behind the alone TTS and its play-file-member would carry no vars."""
    esl = Client.connect(shipped.address)
    try:
        assert esl.command(commands.event(["ALL"])).reply_text.startswith("+OK")
        originate(esl, ALICE, "Ann", "1", "room-quiet@fsconf")
        ann = member_id(esl, ALICE)
        file = "{fsconf_announce=AN1}tone_stream://%(100,0,600)"
        esl.api(f"conference room-quiet play {file} {ann}")
        play = esl.event("play-file-member")
        assert (play.get("File"), play.get("fsconf_announce")) == (file, "AN1")
        assert esl.api(f"conference room-quiet stop all {ann}") == "+OK Stopped 1 files.\n"
    finally:
        esl.close()
