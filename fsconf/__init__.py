"""fsconf: Twilio <Dial><Conference> applications on your own FreeSWITCH."""

__version__ = "0.1.0"
