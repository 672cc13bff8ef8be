"""Self-describing prediction ids, so feedback can be scored by any replica in constant memory.

An id carries what scoring needs (predicted class, model version, issue time) and an HMAC over it with a
key from the environment. Verifying an id needs the key only: no table of issued ids, no shared store,
nothing that grows with traffic. The price is that replays cannot be detected; the maximum age bounds
how long an id stays usable.

Layout, before URL-safe base64 without padding::

    format (1 byte) | class index (1) | issued at, ms since epoch (8) | nonce (6) | model version (utf-8)
    | HMAC-SHA256(key, model name || 0x00 || all of the above), first 16 bytes

The model name is bound through the MAC instead of being carried, which keeps ids short; an id of another
model therefore fails as ``bad_signature`` unless the name matches and only the version differs. The
version is carried, so that a replica scores the ids of every version it accepts (a canary's and the
stable's, sharing the key) under the version that predicted, and refuses the others as ``other_model``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

FORMAT: Final = 1
HEADER = struct.Struct(">BBQ6s")
TAG_BYTES: Final = 16
"""128-bit truncated HMAC: forging one id takes about 2**127 tries."""
MAX_ID_LENGTH: Final = 256
"""Longest id accepted, checked before decoding, so a huge string costs nothing."""
CLOCK_SKEW_MS: Final = 5 * 60 * 1000
"""Ids issued up to this far in the future are accepted: replicas' clocks differ slightly."""


class FeedbackRejected(ValueError):
    """A prediction id that cannot be scored; ``reason`` is one of the contract's rejection reasons."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class VerifiedPrediction:
    """What a valid id says about the prediction it names."""

    class_index: int
    issued_at_ms: int
    model_version: str
    """The version that made the prediction (one of the codec's accepted versions)."""


class PredictionIdCodec:
    """Issues prediction ids for one model name and version, and verifies those of the versions it accepts."""

    def __init__(
        self,
        key: bytes,
        model_name: str,
        model_version: str,
        class_count: int,
        max_age_seconds: float,
        accepted_versions: Sequence[str] = (),
    ) -> None:
        if not 0 < class_count < 256:
            raise ValueError("class count must fit in one byte")
        self._mac = hmac.new(key, model_name.encode() + b"\0", hashlib.sha256)
        self._version = model_version.encode()
        self._accepted = {version.encode() for version in (model_version, *accepted_versions)}
        self.accepted_versions = tuple(dict.fromkeys((model_version, *accepted_versions)))
        """The versions whose ids verify, this codec's own first."""
        self._class_count = class_count
        self._max_age_ms = int(max_age_seconds * 1000)

    def _tag(self, payload: bytes) -> bytes:
        mac = self._mac.copy()
        mac.update(payload)
        return mac.digest()[:TAG_BYTES]

    def issue(self, class_indices: Sequence[int], now_ms: int) -> list[str]:
        """Return one id per predicted class index, all stamped with ``now_ms``."""
        nonces = os.urandom(6 * len(class_indices))
        ids = []
        for position, class_index in enumerate(class_indices):
            payload = (
                HEADER.pack(FORMAT, class_index, now_ms, nonces[6 * position : 6 * position + 6])
                + self._version
            )
            ids.append(base64.urlsafe_b64encode(payload + self._tag(payload)).rstrip(b"=").decode("ascii"))
        return ids

    def verify(self, prediction_id: str, now_ms: int) -> VerifiedPrediction:
        """Check an id and return its prediction, or raise :class:`FeedbackRejected` saying why."""
        if len(prediction_id) > MAX_ID_LENGTH:
            raise FeedbackRejected("malformed_id", f"id longer than {MAX_ID_LENGTH} characters")
        try:
            raw = base64.urlsafe_b64decode(prediction_id + "=" * (-len(prediction_id) % 4))
        except (binascii.Error, ValueError) as error:
            raise FeedbackRejected("malformed_id", "id is not URL-safe base64") from error
        if len(raw) < HEADER.size + TAG_BYTES or raw[0] != FORMAT:
            raise FeedbackRejected("malformed_id", "id has an unknown format")
        payload, tag = raw[:-TAG_BYTES], raw[-TAG_BYTES:]
        if not hmac.compare_digest(tag, self._tag(payload)):
            raise FeedbackRejected("bad_signature", "id signature does not verify (tampered, or another key)")
        _, class_index, issued_at_ms, _ = HEADER.unpack_from(payload)
        version = payload[HEADER.size :]
        if version not in self._accepted:
            raise FeedbackRejected(
                "other_model",
                f"id was issued by model version {version.decode(errors='replace')!r}, "
                f"this replica serves {self._version.decode()!r} and scores versions "
                f"{', '.join(repr(v) for v in self.accepted_versions)}",
            )
        if class_index >= self._class_count:
            raise FeedbackRejected("other_model", "id names a class this model does not have")
        if issued_at_ms > now_ms + CLOCK_SKEW_MS:
            raise FeedbackRejected("malformed_id", "id was issued in the future")
        if now_ms - issued_at_ms > self._max_age_ms:
            raise FeedbackRejected("expired", f"id is older than {self._max_age_ms // 1000} s")
        return VerifiedPrediction(
            class_index=class_index, issued_at_ms=issued_at_ms, model_version=version.decode()
        )
