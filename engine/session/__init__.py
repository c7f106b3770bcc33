"""The session: the step state machine (`machine.py`) and the policies it applies.

    machine.py      steps and cycles, the paper's row rules, the user's steering
    calls.py        agent calls with teacher fallback; typed output and log-probability records
    side_chain.py   a student answers the same prompts; its worse answers become negatives
    soft_labels.py  which teacher's log-probabilities a chosen carries, under which prompt
    events.py       what the session tells the app and the CLI
    script.py       diffs between scripts
"""

from engine.session.events import EventKind, EventSink, SessionEvent
from engine.session.machine import Proposal, Session
from engine.inputs import MAX_SCRIPT_BYTES, read_script
from engine.session.script import unified_diff

__all__ = ["EventKind", "EventSink", "MAX_SCRIPT_BYTES", "Proposal", "Session", "SessionEvent", "read_script",
           "unified_diff"]
