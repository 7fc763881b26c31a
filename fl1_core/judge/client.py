"""Async client for OpenAI-compatible judges: TwiFF-Bench scoring and the RL yes/no accuracy judge.

- Endpoint from :class:`JudgeConfig` or the environment: ``FL1_JUDGE_BASE_URL``, ``FL1_JUDGE_MODEL`` and the API key
  from the variable NAMED by ``JudgeConfig.api_key_env`` (default ``FL1_JUDGE_API_KEY``, falling back to
  ``OPENAI_API_KEY``). The key is read only when the HTTP client is built; it is never stored in the config, a
  result, the cache, a log line or an error string (any occurrence is redacted to ``***``).
- Requests: temperature 0, ``max_tokens`` 1024; TwiFF scoring uses JSON mode (``response_format=json_object``);
  the yes/no judge asks for plain "yes"/"no" (strictly parsed, see :mod:`fl1_core.judge.parsing`).
- Bounded concurrency (semaphore), a per-request timeout, bounded retries with exponential backoff (+ optional
  jitter from a seeded RNG) on 429, 5xx, 408/409, timeouts, connection errors and unparseable replies; other 4xx
  fail at once. The library's own retries are disabled so every attempt is counted here.
- A content-addressed disk cache (:mod:`fl1_core.judge.cache`) so a repeated or resumed scoring re-queries nothing it has;
  identical in-flight requests are coalesced into one.
- Every sample ends judged or failed with a ``judge_error`` string; results come back in input order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import openai

from fl1_core.judge.cache import JudgeCache, cache_key
from fl1_core.judge.parsing import clamp_score_pair, parse_score_reply, parse_yes_no
from fl1_core.judge.prompts import build_twiff_messages, build_yesno_messages

__all__ = [
    "ENV_BASE_URL",
    "ENV_MODEL",
    "ENV_API_KEY",
    "JudgeConfig",
    "JudgeStats",
    "TwiffJudgeItem",
    "YesNoJudgeItem",
    "JudgeClient",
    "normalize_base_url",
    "ajudge_many",
    "judge_many",
]

log = logging.getLogger(__name__)

from fl1_core.judge.config import (  # noqa: F401  (defined there; importable here as before)
    _FALLBACK_KEY_ENV, _PLACEHOLDER_KEY, ENV_API_KEY, ENV_BASE_URL, ENV_MODEL, JudgeConfig, JudgeStats, TwiffJudgeItem,
    YesNoJudgeItem, _coerce_item, normalize_base_url,
)


class _Retryable(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class _Fatal(_Retryable):
    pass


class JudgeClient:
    """Async judge over one event loop. Use ``async with JudgeClient(config) as jc: await jc.judge_all(items)``."""

    def __init__(self, config: JudgeConfig, *, cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.config = config
        self.model = config.resolved_model()
        self.base_url = config.resolved_base_url()
        key = config._api_key()
        if not key:
            log.debug("no judge API key in $%s or $%s; sending a placeholder", config.api_key_env, _FALLBACK_KEY_ENV)
        self._secret = key or ""
        self._client = openai.AsyncOpenAI(
            api_key=key or _PLACEHOLDER_KEY, base_url=self.base_url, max_retries=0, timeout=config.timeout_s
        )
        del key
        directory = cache_dir if cache_dir is not None else config.cache_dir
        self.cache = JudgeCache(directory) if directory else None
        self.stats = JudgeStats()
        self._sem = asyncio.Semaphore(max(1, int(config.concurrency)))
        self._rng = random.Random(config.jitter_seed) if config.jitter_seed is not None else None
        self._inflight: dict[str, asyncio.Future[tuple[Any, str | None, int, str | None]]] = {}

    async def __aenter__(self) -> "JudgeClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.close()

    def __repr__(self) -> str:
        return f"JudgeClient(model={self.model!r}, base_url={self.base_url!r}, api_key=***)"

    # -- helpers -------------------------------------------------------------------------------------------------
    def _redact(self, text: str) -> str:
        if self._secret and len(self._secret) >= 4:
            text = text.replace(self._secret, "***")
        return text

    def _backoff(self, retry: int) -> float:
        delay = min(self.config.backoff_max_s, self.config.backoff_base_s * 2 ** (retry - 1))
        if self._rng is not None:
            delay *= 0.5 + self._rng.random()  # jitter in [0.5, 1.5)
        return delay

    def _request(
        self, item: TwiffJudgeItem | YesNoJudgeItem
    ) -> tuple[list[dict[str, Any]], dict[str, Any], Callable[[str | None], Any]]:
        params: dict[str, Any] = {"temperature": self.config.temperature, "max_tokens": self.config.max_tokens}
        if isinstance(item, TwiffJudgeItem):
            messages = build_twiff_messages(
                item.question,
                item.reference_reasoning,
                item.ground_truth,
                item.model_reasoning,
                item.model_answer,
                item.reference_images,
                include_images=self.config.include_images,
            )
            if self.config.json_mode:
                params["response_format"] = {"type": "json_object"}
            return messages, params, parse_score_reply
        messages = build_yesno_messages(item.question, item.ground_truth, item.model_answer)
        return messages, params, parse_yes_no

    def _count_error(self, kind: str) -> None:
        self.stats.errors[kind] = self.stats.errors.get(kind, 0) + 1

    async def _attempt(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> str | None:
        timeout = self.config.timeout_s
        try:
            async with self._sem:
                self.stats.requests_sent += 1
                resp = await asyncio.wait_for(
                    self._client.chat.completions.create(
                        model=self.model, messages=messages, timeout=timeout, **params
                    ),
                    timeout + 5.0,
                )
        except (openai.APITimeoutError, asyncio.TimeoutError):
            raise _Retryable("timeout", f"timeout after {timeout:g}s") from None
        except openai.APIConnectionError as exc:
            raise _Retryable("connection", f"connection error: {type(exc).__name__}") from None
        except openai.APIStatusError as exc:
            code = exc.status_code
            msg = f"HTTP {code}: {self._redact(str(exc))[:160]}"
            if code == 429 or code >= 500 or code in (408, 409):
                raise _Retryable(f"http_{code}", msg) from None
            raise _Fatal(f"http_{code}", msg) from None
        except openai.APIError as exc:
            raise _Retryable("api_error", f"{type(exc).__name__}: {self._redact(str(exc))[:160]}") from None
        if not getattr(resp, "choices", None):
            raise _Retryable("unparseable", "reply without choices")
        return resp.choices[0].message.content

    async def _query(
        self, messages: list[dict[str, Any]], params: dict[str, Any], parse: Callable[[str | None], Any], key: str
    ) -> tuple[Any, str | None, int, str | None]:
        """Query with retries: ``(parsed, reply, attempts, error)``; ``parsed`` is None on failure."""
        error: str | None = None
        attempts = 0
        for attempt in range(self.config.max_retries + 1):
            if attempt:
                self.stats.retries += 1
                await asyncio.sleep(self._backoff(attempt))
            attempts += 1
            try:
                reply = await self._attempt(messages, params)
            except _Fatal as exc:
                self._count_error(exc.kind)
                return None, None, attempts, f"{exc.kind}: {exc}"
            except _Retryable as exc:
                self._count_error(exc.kind)
                error = f"{exc.kind}: {exc}"
                log.debug("judge attempt %d failed: %s", attempts, error)
                continue
            except Exception as exc:  # a bug or an unexpected library error: fail this sample, keep the rest
                self._count_error("unexpected")
                return None, None, attempts, f"unexpected: {type(exc).__name__}: {self._redact(str(exc))[:160]}"
            parsed = parse(reply)
            if parsed is None:
                self._count_error("unparseable")
                error = f"unparseable: {self._redact(repr((reply or '')[:80]))}"
                log.debug("judge attempt %d failed: %s", attempts, error)
                continue
            if self.cache is not None:
                try:
                    self.cache.put(key, {"model": self.model, "reply": reply})
                except OSError as exc:  # a full disk must not lose a judged sample
                    log.warning("judge cache write failed (%s); continuing without caching", type(exc).__name__)
            return parsed, reply, attempts, None
        return None, None, attempts, f"{error} (gave up after {attempts} attempts)"

    # -- public ----------------------------------------------------------------------------------------------------
    async def judge(self, item: TwiffJudgeItem | YesNoJudgeItem | Mapping[str, Any], idx: int = 0) -> dict[str, Any]:
        """Judge one item; never raises for endpoint problems (they end up in ``judge_error``)."""
        item = _coerce_item(item, idx)
        messages, params, parse = self._request(item)
        key = cache_key(self.model, messages, params)
        cached = False
        parsed: Any = None
        reply: str | None = None
        attempts = 0
        error: str | None = None
        entry = self.cache.get(key) if self.cache is not None else None
        if entry is not None and parse(entry["reply"]) is not None:
            self.stats.cache_hits += 1
            cached, reply = True, entry["reply"]
            parsed = parse(reply)
        elif key in self._inflight:
            self.stats.coalesced += 1
            parsed, reply, attempts, error = await asyncio.shield(self._inflight[key])
        else:
            fut: asyncio.Future[tuple[Any, str | None, int, str | None]] = asyncio.get_running_loop().create_future()
            self._inflight[key] = fut
            try:
                outcome = await self._query(messages, params, parse, key)
            except asyncio.CancelledError:
                fut.cancel()
                raise
            except BaseException as exc:
                fut.set_exception(exc)
                fut.exception()  # mark retrieved so an unawaited future does not warn
                raise
            finally:
                self._inflight.pop(key, None)
            fut.set_result(outcome)
            parsed, reply, attempts, error = outcome
        return self._result(item, parsed, reply, attempts, error, cached)

    def _result(
        self,
        item: TwiffJudgeItem | YesNoJudgeItem,
        parsed: Any,
        reply: str | None,
        attempts: int,
        error: str | None,
        cached: bool,
    ) -> dict[str, Any]:
        base: dict[str, Any] = {"doc_id": item.doc_id, "attempts": attempts, "cached": cached}
        if parsed is None:
            self.stats.failures += 1
            error = error or "failed"
            log.debug("judge failed for doc %r: %s", item.doc_id, error)
        else:
            self.stats.judged += 1
        if isinstance(item, TwiffJudgeItem):
            if parsed is None:
                return {**base, "task": "twiff", "cot_score": None, "answer_score": None, "raw_scores": None,
                        "clamped": False, "judge_error": error}
            (cot, ans), clamped = clamp_score_pair(parsed)
            self.stats.clamped += int(clamped)
            return {**base, "task": "twiff", "cot_score": cot, "answer_score": ans, "raw_scores": list(parsed),
                    "clamped": clamped, "judge_error": None}
        return {**base, "task": "yesno", "verdict": parsed, "reply": (reply or "")[:200] if parsed is not None else None,
                "judge_error": None if parsed is not None else error}

    async def judge_all(
        self,
        items: Sequence[TwiffJudgeItem | YesNoJudgeItem | Mapping[str, Any]],
        *,
        progress: bool = False,
        desc: str = "judge",
    ) -> list[dict[str, Any]]:
        """Judge all items concurrently; results in input order, one per item."""
        from tqdm.auto import tqdm

        start = time.perf_counter()
        coerced = [_coerce_item(it, i) for i, it in enumerate(items)]
        self.stats.items += len(coerced)
        bar = tqdm(total=len(coerced), desc=desc, disable=not progress, leave=False)

        async def one(i: int, it: TwiffJudgeItem | YesNoJudgeItem) -> dict[str, Any]:
            res = await self.judge(it, i)
            bar.update(1)
            return res

        try:
            results = await asyncio.gather(*(one(i, it) for i, it in enumerate(coerced)))
        finally:
            bar.close()
        self.stats.elapsed_s += time.perf_counter() - start
        log.info(
            "judge: %d items, %d judged, %d failed, %d requests, %d cache hits, %d retries, %d clamped",
            len(coerced), sum(r["judge_error"] is None for r in results),
            sum(r["judge_error"] is not None for r in results), self.stats.requests_sent, self.stats.cache_hits,
            self.stats.retries, self.stats.clamped,
        )
        return list(results)


async def ajudge_many(
    items: Sequence[TwiffJudgeItem | YesNoJudgeItem | Mapping[str, Any]],
    config: JudgeConfig | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    desc: str = "judge",
) -> tuple[list[dict[str, Any]], JudgeStats]:
    """Async version of :func:`judge_many`."""
    async with JudgeClient(config or JudgeConfig.from_env(), cache_dir=cache_dir) as jc:
        results = await jc.judge_all(items, progress=progress, desc=desc)
        return results, jc.stats


def judge_many(
    items: Sequence[TwiffJudgeItem | YesNoJudgeItem | Mapping[str, Any]],
    config: JudgeConfig | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    desc: str = "judge",
) -> tuple[list[dict[str, Any]], JudgeStats]:
    """Judge items synchronously (runs an event loop; works inside Jupyter's running loop via a worker thread).

    Returns ``(results, stats)``: one result dict per item in input order — TwiFF items ``{doc_id, task="twiff",
    cot_score, answer_score, raw_scores, clamped, judge_error, attempts, cached}``, yes/no items ``{doc_id,
    task="yesno", verdict, reply, judge_error, attempts, cached}`` — and the :class:`JudgeStats` counters.
    """
    def run() -> tuple[list[dict[str, Any]], JudgeStats]:
        return asyncio.run(ajudge_many(items, config, cache_dir=cache_dir, progress=progress, desc=desc))

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def judge_from_choice(choice: str, stack) -> "JudgeConfig | None":
    """The judge of a run from its one-word choice (CLI flags, notebook parameters): ``"local"`` starts the local
    world judge inside ``stack`` (a ``contextlib.ExitStack``), ``"env"`` reads ``$FL1_JUDGE_*``, ``"none"`` → None."""
    if choice == "local":
        from fl1_core.judge.server import start_judge_server

        return JudgeConfig(base_url=stack.enter_context(start_judge_server()).base_url, model="world-judge")
    if choice == "env":
        return JudgeConfig.from_env()
    if choice in ("none", "", None):
        return None
    raise ValueError(f"unknown judge choice {choice!r}; expected local, env or none")
