"""The status document over a bare engine (no daemon): what the web server reads in tests and bench/web.py."""

from __future__ import annotations

from typing import Any

from healthd.daemon import status
from healthd.engine.engine import Engine
from healthd.web.telemetry import Telemetry


class EngineSource:
    def __init__(self, engine: Engine, telemetry: Telemetry) -> None:
        self.engine = engine
        self.telemetry = telemetry

    async def status_document(self) -> dict[str, Any]:
        return {"config": self.engine.config.path, "reloads": {"ok": 0, "failed": 0},
                **await status.snapshot_dict(await self.engine.snapshot_sliced())}
