"""A local AWS Lambda that really freezes: Runtime + Extensions APIs, RIE invoke, HTTP front.

`holdfast emulate -- COMMAND` from the shell; `Emulator` / `ThreadedEmulator` from Python.
"""

from .attempt import FreezeRecord
from .config import EmulatorConfig
from .invoke import InvokeResult, TooManyRequests
from .report import Report
from .service import Emulator, ThreadedEmulator

__all__ = [
    "Emulator",
    "EmulatorConfig",
    "FreezeRecord",
    "InvokeResult",
    "Report",
    "ThreadedEmulator",
    "TooManyRequests",
]
