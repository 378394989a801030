"""Init: external extensions first, then the runtime, until everyone has called `next`."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence

from ..attempt import Attempt
from ..invoke import RuntimeResponse
from ..sandbox import Sandbox
from ..telemetry import TelemetryHub
from .shutdown import Shutdown
from .variables import function_metadata, function_variables


class Init(Shutdown):
    """Starts an environment's processes and waits for its init."""

    async def _init(self, deadline: float, attempt: Attempt | None) -> RuntimeResponse | str | None:
        """Start the processes and wait for init; None on success, else the failure."""
        config = self._config
        hub = TelemetryHub()
        sandbox = Sandbox(
            function_metadata(self._config),
            [os.path.basename(c[0]) for c in config.extensions],
            max_concurrency=config.max_concurrency,
            telemetry=hub,
            snap_start=config.snap_start,
        )
        sandbox.on_runtime_ready = self._runtime_ready
        sandbox.on_runtime_done = self._runtime_done
        sandbox.on_restored = self._restored

        def ready() -> bool:
            return sandbox.snapshot_ready if config.snap_start else sandbox.initialized

        self._sandbox = self._api.sandbox = sandbox
        self.init_output.clear()
        env = function_variables(self._config, self._api.address)
        self._init_began = time.time()
        self._init_type = env["AWS_LAMBDA_INITIALIZATION_TYPE"]
        hub.emit(
            "platform.initStart",
            {
                "initializationType": self._init_type,
                "phase": self._init_phase,
                "functionName": config.function_name,
                "functionVersion": "$LATEST",
            },
        )
        try:
            for command in config.extensions:
                output = self._output("extension")
                process = await self._group.spawn(command, env=env, cwd=config.cwd, output=output)
                self._extensions.append(process)
            registered = await self._until(
                lambda: _externals_registered(sandbox), deadline, self._extensions
            )
            if registered == "done" and sandbox.init_failure is None:
                self._runtime_output = self._output("function")
                sandbox.runtime_started = True
                self._runtime = await self._group.spawn(
                    runtime_command(config.command, env),
                    env=env,
                    cwd=config.cwd,
                    output=self._runtime_output,
                )
                registered = await self._until(
                    lambda: ready() or sandbox.init_failure is not None,
                    deadline,
                    self._processes(),
                )
        except OSError as exc:
            return RuntimeResponse.platform_error(
                "Runtime.InvalidEntrypoint", f"fork/exec {exc.filename}: {exc.strerror}"
            )
        if sandbox.init_failure is not None:
            return sandbox.init_failure
        if registered == "done":
            self._init_ended("success", None)
            return None
        if registered == "timeout":
            return "timeout"
        return self._exit_error(attempt, registered)


def _externals_registered(sandbox: Sandbox) -> bool:
    registered = sum(1 for e in sandbox.extensions.values() if e.external)
    return sandbox.init_failure is not None or registered >= sandbox.expected_externals


def runtime_command(command: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """The runtime's command, behind the `AWS_LAMBDA_EXEC_WRAPPER` script if one is set.

    Lambda's managed runtimes start `WRAPPER INTERPRETER ARGS...` instead of the interpreter; the
    wrapper decides how (and whether) to start it. The emulator does the same for any command.
    """
    wrapper = env.get("AWS_LAMBDA_EXEC_WRAPPER")
    return [wrapper, *command] if wrapper else list(command)
