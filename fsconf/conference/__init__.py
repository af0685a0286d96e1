"""Twilio ``<Conference>`` semantics as a pure engine.

``apply(state, event, now) -> (state, effects)``: see :mod:`fsconf.conference.engine`
for the rules, :mod:`.model` for the state, :mod:`.events` for the inputs,
:mod:`.effects` for the outputs, :mod:`.callbacks` for Twilio's parameter sets and
:mod:`.mapping` for the attribute -> FreeSWITCH join plan.
"""

from fsconf.conference.engine import apply
from fsconf.conference.model import (
    ConferenceState,
    EngineConfig,
    ParticipantSettings,
    new_conference,
)

__all__ = ["ConferenceState", "EngineConfig", "ParticipantSettings", "apply", "new_conference"]
