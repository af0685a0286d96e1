"""Operator tooling behind the ``fsconf`` CLI.

* :mod:`fsconf.ops.output`: aligned text tables and the ``--json`` documents;
* :mod:`fsconf.ops.resolve`: CONFERENCE (SID or friendly name) and PARTICIPANT
  (CallSid or label) to rows;
* :mod:`fsconf.ops.actions`: the REST client the CLI's actions go through
  (the running ``fsconf serve`` owns the conference engine);
* :mod:`fsconf.ops.doctor`: the checks of ``fsconf doctor``, pure functions
  over FreeSWITCH's api replies, and the runner that asks for them.
"""
