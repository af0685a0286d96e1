"""One call's TwiML interpreter over the outbound Event Socket.

* :mod:`.program` — the pure interpreter: verbs and results in, steps out;
* :mod:`.params` — Twilio's request parameters; :mod:`.voices` — Say voices;
* :mod:`.fetch` — the signed, time-bounded TwiML fetcher;
* :mod:`.audio` — wait/hold/announce audio loops;
* :mod:`.gateway` — :class:`CallHandle` and the :class:`ConferenceGateway` seam;
* :mod:`.runner` — the gevent shell around the program;
* :mod:`.service` — :class:`CallService`, the outbound server's handler.
"""

from fsconf.calls.audio import AudioConfig, AudioLoop
from fsconf.calls.fetch import Fetcher, FetchTimeouts
from fsconf.calls.gateway import CallHandle, ConferenceGateway, NoConferenceGateway
from fsconf.calls.params import CallParams
from fsconf.calls.program import DialOutcome, ProgramConfig
from fsconf.calls.runner import CallRunner
from fsconf.calls.service import CallService, CallSettings
from fsconf.calls.voices import TtsConfig

__all__ = [
    "AudioConfig",
    "AudioLoop",
    "CallHandle",
    "CallParams",
    "CallRunner",
    "CallService",
    "CallSettings",
    "ConferenceGateway",
    "DialOutcome",
    "FetchTimeouts",
    "Fetcher",
    "NoConferenceGateway",
    "ProgramConfig",
    "TtsConfig",
]
