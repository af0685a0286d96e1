"""Twilio voices and languages -> the configured TTS engine and voice (pure).

Theory of operation
-------------------
Twilio's ``<Say voice=... language=...>`` names voices fsconf cannot have
(``alice``, ``Polly.Joanna``, ``Google.en-US-Standard-C``). What a caller must
still get is *a* voice of the right gender, spoken by the engine the switch
has. So a voice name is reduced to a gender through :data:`VOICE_GENDERS`
(explicit, no guessing from the spelling except the documented ``Polly.`` /
``Google.`` prefixes, whose unknown names fall back to the default), and the
gender picks a voice of the configured :class:`TtsConfig`.

A language may override the voice (``TtsConfig.languages``, e.g.
``{"fr-FR": ("flite", "kal")}`` or a mod_tts_commandline voice). The default
engine is ``flite`` with ``kal`` (male) and ``slt`` (female), which every
FreeSWITCH build ships; flite speaks only English, so other languages are
spoken with the English voice unless configured.

Twilio's default voice is ``man``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class Gender(StrEnum):
    MALE = "male"
    FEMALE = "female"


#: Twilio voice names (lower case) -> gender. Polly/Google names are listed
#: without their prefix; an unknown name gets the default voice.
VOICE_GENDERS: Final[Mapping[str, Gender]] = MappingProxyType(
    {
        "man": Gender.MALE,
        "woman": Gender.FEMALE,
        "alice": Gender.FEMALE,
        # Amazon Polly (the common English, Spanish, French and German voices)
        "joanna": Gender.FEMALE, "salli": Gender.FEMALE, "kimberly": Gender.FEMALE,
        "kendra": Gender.FEMALE, "ivy": Gender.FEMALE, "amy": Gender.FEMALE,
        "emma": Gender.FEMALE, "nicole": Gender.FEMALE, "raveena": Gender.FEMALE,
        "aditi": Gender.FEMALE, "ruth": Gender.FEMALE, "danielle": Gender.FEMALE,
        "olivia": Gender.FEMALE, "lupe": Gender.FEMALE, "penelope": Gender.FEMALE,
        "conchita": Gender.FEMALE, "lucia": Gender.FEMALE, "mia": Gender.FEMALE,
        "celine": Gender.FEMALE, "léa": Gender.FEMALE, "lea": Gender.FEMALE,
        "marlene": Gender.FEMALE, "vicki": Gender.FEMALE,
        "matthew": Gender.MALE, "joey": Gender.MALE, "justin": Gender.MALE,
        "kevin": Gender.MALE, "brian": Gender.MALE, "russell": Gender.MALE,
        "stephen": Gender.MALE, "gregory": Gender.MALE, "miguel": Gender.MALE,
        "enrique": Gender.MALE, "mathieu": Gender.MALE, "hans": Gender.MALE,
        "daniel": Gender.MALE,
    }
)  # fmt: skip

_PREFIXES: Final = ("polly.", "google.")


@dataclass(frozen=True, slots=True)
class Voice:
    engine: str
    voice: str


@dataclass(frozen=True, slots=True)
class TtsConfig:
    """The switch's TTS: one engine, a male and a female voice, language overrides."""

    engine: str = "flite"
    male: str = "kal"
    female: str = "slt"
    default_gender: Gender = Gender.MALE
    languages: Mapping[str, Voice] = field(default_factory=lambda: MappingProxyType({}))


def gender_of(voice: str | None, default: Gender) -> Gender:
    """The gender of a Twilio voice name; ``default`` when unknown or absent."""
    if not voice:
        return default
    name = voice.strip().lower()
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :].split("-neural")[0]
            break
    if name in VOICE_GENDERS:
        return VOICE_GENDERS[name]
    # Google voice names end with a letter, but its gender is per language:
    # no table is worth keeping for that, so they get the default.
    return default


def select_voice(config: TtsConfig, voice: str | None, language: str | None) -> Voice:
    """The engine and voice that speak a ``<Say voice language>``."""
    if language:
        for key in (language, language.split("-")[0]):
            override = config.languages.get(key)
            if override is not None:
                return override
    gender = gender_of(voice, config.default_gender)
    return Voice(config.engine, config.male if gender is Gender.MALE else config.female)
