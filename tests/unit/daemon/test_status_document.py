"""The sliced status document (`status --json`, `/status.json`) has the shape `as_json` gives the snapshot."""

from __future__ import annotations

import dataclasses
import json

from healthd.daemon.status import snapshot_dict
from healthd.engine.scheduler import SchedulerStats
from healthd.engine.snapshot import Snapshot, as_json


def _scheduler() -> SchedulerStats:
    return SchedulerStats(**{f.name: 0 for f in dataclasses.fields(SchedulerStats)})


async def test_the_sliced_document_equals_as_json_with_refusals() -> None:
    refusal = "add real 10.0.0.2:80 to TCP 10.0.0.1:80 (gate, weight 1): refused by the kernel: ERANGE"
    snap = Snapshot(at=1.5, config="/etc/ha.d/x.cf", first_round_done=True, last_sync_error=None,
                    scheduler=_scheduler(), virtuals=(), refused=(refusal,))
    document = await snapshot_dict(snap)
    # compared as JSON: asdict keeps tuples where the sliced document builds lists
    assert json.loads(json.dumps(document)) == json.loads(json.dumps(as_json(snap)))
    assert document["refused"] == [refusal]
