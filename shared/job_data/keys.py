"""Every Redis key resq writes, in one place: its template and what it holds. The
classes that run the scripts (`shared.job_data.store`, `.budget`, `.reconcile`,
`.outbox`, `.records`) and the worker's heartbeat and sweeper take their keys from
here; nothing else spells a key.

Per job (any queue):
    resq:job:<id>            the job's record: a hash while it is queued or started,
                             its final JSON (a string) once it has ended
    resq:image:<id>          the image bytes its message points to (until it ends)
    resq:job-events:<id>     pub/sub channel: the job ended (waiting requests listen)
    resq:delivery:<id>       one webhook delivery: job id, URL, attempts, event, body

Per batch (`POST /batches`; its items are jobs whose ids are `<batch id>.<index>`):
    resq:batch:<id>          the batch: a hash of its options, progress and counts
    resq:batch-items:<id>    its items in order: JSON {id, input, bytes[, url]}
    resq:batch-ended:<id>    item indexes in the order they ended (the results' cursor)

Per image and model (`RESULT_CACHE`):
    resq:cache:<model>:<scope>:<sha256>  a classified image's top-20 predictions and
                             its model block (JSON), for `RESULT_CACHE_TTL_SECONDS`;
                             scope: `key-<owner>` or `shared`

Per queue (`QUEUE_NAME`):
    <queue>, <queue>-interactive   the lanes: Celery's lists of messages
    resq:inflight:<queue>    every accepted job not yet ended, scored by when it was
                             accepted or last sent (the sweeper's and /scaling's index)
    resq:queued-bytes:<queue>  bytes of the images of those jobs
    resq:queued-by:<queue>:<caller>  queued jobs of one caller (`QUEUE_MAX_PER_KEY`)
    resq:quota-keys:<queue>  the callers' counters in use (the reconcile reads them)
    resq:finished:<queue>    ended jobs in the order they ended: dropped oldest first
                             when Redis's memory is needed for new work
    resq:results-dropped:<queue>  results dropped so far (a counter)
    resq:dropped-before:<queue>   the newest dropped job's id time (ms): an unknown id
                             older than it reads `result_dropped`
    resq:corrections:<queue> drift the reconcile corrected, by counter (a hash)
    resq:outbox:<queue>      webhook deliveries due, scored by when
    resq:workers:<queue>     the queue's workers, scored by their last beat
    resq:sweeper-lock:<queue>, resq:orphan-scan-lock:<queue>  one at a time per queue
    resq:ratelimit:<queue>   Flask-Limiter's counters (its own keys under this prefix)
    resq:models:<queue>      the model identities its workers run, scored by their last
                             beat (the web tier reads the result cache under the one
                             live identity)
    resq:cache-entries:<queue>  the cache entries its workers wrote, oldest first:
                             dropped before any ended job's record for room
    resq:batches:<queue>     batches with items not yet released, scored by creation
    resq:batch-unreleased:<queue>  items of those batches not yet released (what
                             autoscaling counts beside the open jobs)
    resq:batch-stats:<queue> batch items released so far, and batches ended by
                             status (`succeeded`, `cancelled`): a hash of counters

Per worker process:
    resq:worker:<worker id>  its heartbeat (lives 5 beats)
    resq:held:<worker id>    job id -> delivery tag of the messages it holds

Per caller:
    resq:idem:<sha256>       an Idempotency-Key's job and request fingerprint

Kombu's own keys (its Redis transport, named in `shared.celery_app`): `unacked`,
`unacked_index`, `_kombu.binding.*`.
"""

from __future__ import annotations

from shared.lanes import served_lists

PREFIX = "resq:"


class QueueKeys:
    """The keys of one queue's jobs and workers."""

    def __init__(self, queue: str):
        self.queue = queue
        self.lane_lists = served_lists(queue)
        self.inflight = f"{PREFIX}inflight:{queue}"
        self.queued_bytes = f"{PREFIX}queued-bytes:{queue}"
        self.quota_keys = f"{PREFIX}quota-keys:{queue}"
        self.finished = f"{PREFIX}finished:{queue}"
        self.results_dropped = f"{PREFIX}results-dropped:{queue}"
        self.dropped_before = f"{PREFIX}dropped-before:{queue}"
        self.corrections = f"{PREFIX}corrections:{queue}"
        self.outbox = f"{PREFIX}outbox:{queue}"
        self.workers = f"{PREFIX}workers:{queue}"
        self.sweeper_lock = f"{PREFIX}sweeper-lock:{queue}"
        self.orphan_scan_lock = f"{PREFIX}orphan-scan-lock:{queue}"
        self.rate_limits = f"{PREFIX}ratelimit:{queue}"
        self.cache_entries = f"{PREFIX}cache-entries:{queue}"
        self.models = f"{PREFIX}models:{queue}"
        self.batches = f"{PREFIX}batches:{queue}"
        self.batch_unreleased = f"{PREFIX}batch-unreleased:{queue}"
        self.batch_stats = self.batch_stats_of(queue)

    @staticmethod
    def batch_stats_of(queue: str) -> str:
        return f"{PREFIX}batch-stats:{queue}"

    def quota_counter(self, caller: str) -> str:
        return f"{PREFIX}queued-by:{self.queue}:{caller}"

    # Per job: the same for every queue.
    @staticmethod
    def record(job_id: str) -> str:
        return f"{PREFIX}job:{job_id}"

    @staticmethod
    def image(job_id: str) -> str:
        return f"{PREFIX}image:{job_id}"

    @staticmethod
    def events(job_id: str) -> str:
        return f"{PREFIX}job-events:{job_id}"

    @staticmethod
    def delivery(delivery_id: str) -> str:
        return f"{PREFIX}delivery:{delivery_id}"

    # Per image and model.
    @staticmethod
    def cache_entry(model: str, scope: str, digest: str) -> str:
        return f"{PREFIX}cache:{model}:{scope}:{digest}"

    # Per batch: the same for every queue.
    @staticmethod
    def batch(batch_id: str) -> str:
        return f"{PREFIX}batch:{batch_id}"

    @staticmethod
    def batch_items(batch_id: str) -> str:
        return f"{PREFIX}batch-items:{batch_id}"

    @staticmethod
    def batch_ended(batch_id: str) -> str:
        return f"{PREFIX}batch-ended:{batch_id}"

    # Per worker process.
    @staticmethod
    def heartbeat(worker_id: str) -> str:
        return f"{PREFIX}worker:{worker_id}"

    @staticmethod
    def held(worker_id: str) -> str:
        return f"{PREFIX}held:{worker_id}"

    # Per caller.
    @staticmethod
    def idempotency(digest: str) -> str:
        return f"{PREFIX}idem:{digest}"
