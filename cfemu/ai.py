"""The Workers AI binding (`[ai] binding = "AI"`): `await env.AI.run(model, inputs)`.

Two providers answer:

* an OpenAI-compatible server (llama.cpp `llama-server`, Ollama, LM Studio, vLLM...) when
  `CFEMU_AI_BASE_URL` is set, e.g. `http://127.0.0.1:11434/v1`;
* otherwise a built-in offline responder whose replies say that they come from it.  It is
  deterministic: the same model and inputs give the same reply, so tests can assert on it.

Configuration (process environment first, then the worker's `.dev.vars` / `[vars]`):

* `CFEMU_AI_BASE_URL` - the server's base URL (`/v1` is added when the URL has no path);
* `CFEMU_AI_MODEL` - the server model for text generation: `llama3.1:8b` (every model), or a comma-
  separated map `@cf/meta/llama-3.1-8b-instruct=llama3.1:8b,@cf/qwen/qwq-32b=qwq`; a bare name in
  the list is the default; unmapped models are sent under their Workers AI name;
* `CFEMU_AI_EMBEDDING_MODEL` - the server model for embeddings (same syntax);
* `CFEMU_AI_API_KEY` - sent as `Authorization: Bearer ...`;
* `CFEMU_AI_TIMEOUT` - seconds before a request fails (default 120); a streamed answer fails when
  the server sends nothing for that long.

Supported tasks: text generation (`prompt` or `messages`, `max_tokens`, `temperature`, `stream`)
returning `{"response": ...}` (with `stream`, the server's stream is relayed event by event as
Workers AI's server-sent events), and text embeddings (`@cf/baai/bge-*`: `{"text": [...]}` returning
`{"shape": [n, d], "data": [[...]]}`).  Errors are `InferenceUpstreamError`s as the binding throws them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import re
import struct
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError, JsException, JsTypeError
from .objects import JsObject
from .services import Service

__all__ = ["Ai", "AIService", "AIConfigFromEnv", "InferenceUpstreamError", "OFFLINE_LABEL"]

log = logging.getLogger("cfemu.ai")

OFFLINE_LABEL = "[cfemu offline AI responder]"
DEFAULT_MAX_TOKENS = 256   # Workers AI's default for text generation models
DEFAULT_TIMEOUT = 120.0

# Workers AI error texts ("<internal code>: <description>").
NO_SUCH_MODEL = "5007: No such model {model} or task"
INPUT_ONE_OF = ("5006: Error: oneOf at '/' not met, 0 matches: required properties at '/' are 'prompt', "
                "required properties at '/' are 'messages'")
INPUT_REQUIRED = "5006: Error: required properties at '/' are '{name}'"
INPUT_TYPE = "5006: Error: must be {type} at '{path}'"
TASK_NOT_EMULATED = ("cfemu emulates the text generation and text embeddings tasks of Workers AI only; "
                     "{model} is a model for {task}")

_MODEL = re.compile(r"^@(cf|hf)/[A-Za-z0-9_.-]+/[A-Za-z0-9_.:-]+$")
# Name fragments of Workers AI models whose task is neither text generation nor embeddings.
_OTHER_TASKS = [
    ("reranker", "text classification"), ("whisper", "automatic speech recognition"),
    ("nova-", "automatic speech recognition"), ("stable-diffusion", "text-to-image"), ("flux", "text-to-image"),
    ("dreamshaper", "text-to-image"), ("lucid-origin", "text-to-image"), ("phoenix", "text-to-image"),
    ("resnet", "image classification"), ("detr", "object detection"), ("m2m100", "translation"),
    ("indictrans", "translation"), ("distilbert-sst", "text classification"), ("bart-large-cnn", "summarization"),
    ("llava", "image-to-text"), ("uform", "image-to-text"), ("melotts", "text-to-speech"),
    ("aura-", "text-to-speech"), ("smart-turn", "voice activity detection"),
]
_EMBEDDING_DIMS = {"bge-small": 384, "bge-base": 768, "bge-large": 1024, "bge-m3": 1024}


class InferenceUpstreamError(JsException):
    """What `env.AI.run` throws when Workers AI answers with an error (name from the service)."""

    name = "InferenceUpstreamError"


def _task(model: Any) -> str:
    if not isinstance(model, str) or not _MODEL.match(model):
        raise InferenceUpstreamError(NO_SUCH_MODEL.format(model=model))
    name = model.rsplit("/", 1)[1].lower()
    for fragment, task in _OTHER_TASKS:
        if fragment in name:
            return task
    if name.startswith("bge-") or "embedding" in name or name.startswith("embeddinggemma"):
        return "text embeddings"
    return "text generation"


class AIConfigFromEnv:
    """Where the binding sends requests, read from the environment (and the worker's vars)."""

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        values = dict(values or {})
        values.update({k: v for k, v in os.environ.items() if k.startswith("CFEMU_AI_")})
        base = str(values.get("CFEMU_AI_BASE_URL") or "").strip()
        if base:
            try:
                parts = urlsplit(base)
                ok = parts.scheme in ("http", "https") and bool(parts.hostname)
            except ValueError:
                ok = False
            if not ok:
                raise ConfigError(f"CFEMU_AI_BASE_URL must be an http:// or https:// URL, not {base!r}")
            if parts.path in ("", "/"):
                base = base.rstrip("/") + "/v1"
        self.base_url = base.rstrip("/") or None
        self.text_models = _model_map(values.get("CFEMU_AI_MODEL"))
        self.embedding_models = _model_map(values.get("CFEMU_AI_EMBEDDING_MODEL"))
        self.api_key = values.get("CFEMU_AI_API_KEY") or None
        raw = values.get("CFEMU_AI_TIMEOUT")
        try:
            self.timeout = float(raw or DEFAULT_TIMEOUT)
        except ValueError:
            self.timeout = math.nan
        # aiohttp treats 0 as "no timeout": a request could then wait forever.
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise ConfigError(f"CFEMU_AI_TIMEOUT must be a positive number of seconds, not {raw!r}")

    def server_model(self, model: str, task: str) -> str:
        table = self.embedding_models if task == "text embeddings" else self.text_models
        return table.get(model) or table.get("") or model


def _model_map(spec: Any) -> dict[str, str]:
    table: dict[str, str] = {}
    for item in str(spec or "").split(","):
        item = item.strip()
        if not item:
            continue
        source, sep, target = item.partition("=")
        if sep and source.strip().startswith("@"):
            table[source.strip()] = target.strip()
        else:
            table[""] = item
    return table


class Ai:
    """Mirrors the Workers AI binding: `await run(model, inputs, options)`."""

    def __init__(self, config: AIConfigFromEnv, *, service: AIService | None = None) -> None:
        self._config = config
        self._service = service
        self._session: Any = None
        self._requests = 0
        self.lastRequestId: str | None = None

    def __repr__(self) -> str:
        return f"<Ai {'-> ' + self._config.base_url if self._config.base_url else '(offline responder)'}>"

    async def run(self, model: str, inputs: Any, options: Any = None, **kwargs: Any) -> Any:
        """`Ai.run`: text generation gives `{"response", "usage"}` (or an SSE stream when
        `inputs["stream"]`); text embeddings give `{"shape", "data"}`."""
        task = _task(model)
        if not isinstance(inputs, Mapping):
            raise InferenceUpstreamError(INPUT_TYPE.format(type="object", path="/"))
        inputs = dict(inputs)
        self._requests += 1
        self.lastRequestId = f"cfemu-ai-{self._requests}"
        if task == "text generation":
            messages = _messages(inputs)
            if self._config.base_url and inputs.get("stream"):
                return await self._chat_stream(model, messages, inputs)
            if self._config.base_url:
                text, usage = await self._chat(model, messages, inputs)
            else:
                self._note_offline()
                text, usage = _offline_reply(model, messages, inputs)
            if inputs.get("stream"):
                return _sse(text, usage)
            return JsObject(response=text, usage=JsObject(usage))
        if task == "text embeddings":
            texts = _texts(inputs)
            if self._config.base_url:
                vectors = await self._embed(model, texts)
            else:
                self._note_offline()
                vectors = [_offline_embedding(model, t) for t in texts]
            width = len(vectors[0]) if vectors else _dims(model)
            return JsObject(shape=[len(vectors), width], data=vectors)
        raise InferenceUpstreamError(TASK_NOT_EMULATED.format(model=model, task=task))

    def _note_offline(self) -> None:
        if self._service is not None:
            self._service.note_offline()

    # -- the OpenAI-compatible server ----------------------------------------------------------

    def _request(self, path: str) -> tuple[str, Any, dict[str, str]]:
        import aiohttp

        url = f"{self._config.base_url}{path}"
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        headers = {"content-type": "application/json"}
        if self._config.api_key:
            headers["authorization"] = f"Bearer {self._config.api_key}"
        return url, self._session, headers

    async def _post(self, path: str, payload: dict[str, Any]) -> Any:
        import aiohttp

        url, session, headers = self._request(path)
        try:
            async with session.post(url, json=payload, headers=headers,
                                    timeout=aiohttp.ClientTimeout(total=self._config.timeout)) as resp:
                # Servers do send bytes that are not UTF-8 (error pages); never fail on decoding them.
                body = (await resp.read()).decode("utf-8", errors="replace")
                if resp.status >= 400:
                    raise InferenceUpstreamError(
                        f"cfemu: the AI server at {url} answered {resp.status}: {_snippet(body)}")
        except asyncio.TimeoutError:
            raise InferenceUpstreamError(
                f"cfemu: the AI server at {url} did not answer within {self._config.timeout:g} s") from None
        except aiohttp.ClientError as e:
            raise InferenceUpstreamError(f"cfemu: cannot reach the AI server at {url}: {e}") from None
        try:
            return json.loads(body)
        except ValueError:
            raise InferenceUpstreamError(f"cfemu: the AI server at {url} sent something that is not JSON: "
                                         f"{_snippet(body)}") from None

    def _chat_payload(self, model: str, messages: list[dict[str, Any]], inputs: dict[str, Any]) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self._config.server_model(model, "text generation"),
            "messages": messages,
            "max_tokens": inputs.get("max_tokens", DEFAULT_MAX_TOKENS),
            "stream": False,
        }
        for name in ("temperature", "top_p", "seed", "frequency_penalty", "presence_penalty"):
            if inputs.get(name) is not None:
                payload[name] = inputs[name]
        return payload

    async def _chat(self, model: str, messages: list[dict[str, Any]], inputs: dict[str, Any]) -> tuple[str, dict]:
        answer = await self._post("/chat/completions", self._chat_payload(model, messages, inputs))
        try:
            text = answer["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise InferenceUpstreamError(f"cfemu: the AI server's answer has no choices[0].message.content: "
                                         f"{_snippet(json.dumps(answer))}") from None
        return text, _usage(answer.get("usage"))

    async def _embed(self, model: str, texts: list[str]) -> list[list[float]]:
        answer = await self._post("/embeddings", {"model": self._config.server_model(model, "text embeddings"),
                                                  "input": texts})
        try:
            items = sorted(answer["data"], key=lambda d: d.get("index", 0))
            return [list(map(float, item["embedding"])) for item in items]
        except (KeyError, TypeError, ValueError, AttributeError):
            raise InferenceUpstreamError(f"cfemu: the AI server's answer has no data[].embedding: "
                                         f"{_snippet(json.dumps(answer))}") from None

    async def _chat_stream(self, model: str, messages: list[dict[str, Any]], inputs: dict[str, Any]) -> _UpstreamSSE:
        """Open a streamed chat completion; the answer's deltas are relayed as Workers AI events."""
        import aiohttp

        payload = self._chat_payload(model, messages, inputs)
        payload["stream"] = True
        url, session, headers = self._request("/chat/completions")
        timeout = self._config.timeout
        try:
            # No total limit (a long answer may stream for minutes), but every wait for bytes is bounded.
            resp = await session.post(url, json=payload, headers=headers,
                                      timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout))
        except asyncio.TimeoutError:
            raise InferenceUpstreamError(f"cfemu: the AI server at {url} did not answer within {timeout:g} s") from None
        except aiohttp.ClientError as e:
            raise InferenceUpstreamError(f"cfemu: cannot reach the AI server at {url}: {e}") from None
        if resp.status >= 400:
            try:
                body = (await resp.read()).decode("utf-8", errors="replace")
            except (asyncio.TimeoutError, aiohttp.ClientError):
                body = ""
            finally:
                resp.release()
            raise InferenceUpstreamError(f"cfemu: the AI server at {url} answered {resp.status}: {_snippet(body)}")
        return _UpstreamSSE(resp, url, timeout)

    async def _aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def _usage(usage: Any) -> dict[str, int]:
    usage = usage if isinstance(usage, Mapping) else {}
    out = {}
    for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
        value = usage.get(name, 0)
        out[name] = value if isinstance(value, int) and not isinstance(value, bool) else 0
    return out


class _UpstreamSSE:
    """A streamed answer from the server, relayed as Workers AI's server-sent events (bytes)."""

    def __init__(self, resp: Any, url: str, timeout: float) -> None:
        self._resp = resp
        self._url = url
        self._timeout = timeout
        self.locked = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        if self.locked:
            raise JsTypeError("This ReadableStream is currently locked to a reader.")
        self.locked = True
        return self._events()

    async def _events(self) -> AsyncIterator[bytes]:
        import aiohttp

        usage: dict[str, int] | None = None
        try:
            while True:
                try:
                    line = await self._resp.content.readline()
                except asyncio.TimeoutError:
                    raise InferenceUpstreamError(
                        f"cfemu: the AI server at {self._url} sent nothing for {self._timeout:g} s") from None
                except (aiohttp.ClientError, ValueError) as e:
                    raise InferenceUpstreamError(f"cfemu: the AI server at {self._url} broke off its answer: {e}") from None
                if not line:
                    break
                text = line.decode("utf-8", errors="replace").strip()
                if not text.startswith("data:"):
                    continue
                data = text[len("data:"):].strip()
                if data == "[DONE]":
                    break
                try:
                    event = json.loads(data)
                except ValueError:
                    raise InferenceUpstreamError(f"cfemu: the AI server at {self._url} streamed something that is "
                                                 f"not JSON: {_snippet(data)}") from None
                if not isinstance(event, Mapping):
                    continue
                if event.get("usage"):
                    usage = _usage(event["usage"])
                choices = event.get("choices")
                piece = None
                if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
                    delta = choices[0].get("delta")
                    if isinstance(delta, Mapping):
                        piece = delta.get("content")
                if isinstance(piece, str) and piece:
                    yield f"data: {json.dumps({'response': piece})}\n\n".encode()
        finally:
            self._resp.release()
        tail = {"response": ""}
        if usage is not None:
            tail["usage"] = usage
        yield f"data: {json.dumps(tail)}\n\n".encode()
        yield b"data: [DONE]\n\n"


def _snippet(text: str, size: int = 300) -> str:
    text = text.strip()
    return text if len(text) <= size else text[:size] + "..."


def _messages(inputs: dict[str, Any]) -> list[dict[str, Any]]:
    has_prompt, has_messages = "prompt" in inputs, "messages" in inputs
    if has_prompt == has_messages:
        raise InferenceUpstreamError(INPUT_ONE_OF)
    _check_numbers(inputs)
    if has_prompt:
        if not isinstance(inputs["prompt"], str):
            raise InferenceUpstreamError(INPUT_TYPE.format(type="string", path="/prompt"))
        return [{"role": "user", "content": inputs["prompt"]}]
    messages = inputs["messages"]
    if not isinstance(messages, list):
        raise InferenceUpstreamError(INPUT_TYPE.format(type="array", path="/messages"))
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise InferenceUpstreamError(INPUT_TYPE.format(type="object", path=f"/messages/{i}"))
        for name in ("role", "content"):
            if name not in message:
                raise InferenceUpstreamError(f"5006: Error: required properties at '/messages/{i}' are '{name}'")
        out.append({"role": message["role"], "content": message["content"]})
    return out


def _check_numbers(inputs: dict[str, Any]) -> None:
    # Checked for `prompt` and `messages` inputs alike, before anything is sent to a server.
    for name, kind in (("max_tokens", int), ("seed", int), ("temperature", (int, float)), ("top_p", (int, float)),
                       ("frequency_penalty", (int, float)), ("presence_penalty", (int, float))):
        value = inputs.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
            raise InferenceUpstreamError(INPUT_TYPE.format(type="integer" if kind is int else "number", path=f"/{name}"))


def _texts(inputs: dict[str, Any]) -> list[str]:
    if "text" not in inputs:
        raise InferenceUpstreamError(INPUT_REQUIRED.format(name="text"))
    text = inputs["text"]
    texts = [text] if isinstance(text, str) else text
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise InferenceUpstreamError(INPUT_TYPE.format(type="string or array of strings", path="/text"))
    return texts


# -- the offline responder ---------------------------------------------------------------------


def _offline_reply(model: str, messages: list[dict[str, Any]], inputs: dict[str, Any]) -> tuple[str, dict]:
    """A fixed, input-derived reply; max_tokens caps it in words (a stand-in for tokens)."""
    last = next((m for m in reversed(messages) if m.get("role") == "user"), messages[-1] if messages else {})
    content = last.get("content", "")
    if not isinstance(content, str):
        content = json.dumps(content, sort_keys=True)
    digest = hashlib.sha256(json.dumps([model, messages], sort_keys=True, default=str).encode()).hexdigest()[:8]
    excerpt = " ".join(content.split())
    if len(excerpt) > 80:
        excerpt = excerpt[:77] + "..."
    text = (f"{OFFLINE_LABEL} {model} got {len(messages)} message(s); the last user message was "
            f"\"{excerpt}\" (reply {digest}). Set CFEMU_AI_BASE_URL to use a real model.")
    words = text.split(" ")
    max_tokens = inputs.get("max_tokens", DEFAULT_MAX_TOKENS)
    if isinstance(max_tokens, int) and 0 < max_tokens < len(words):
        text = " ".join(words[:max_tokens])
    prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
    completion_tokens = len(text.split())
    return text, {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens}


def _dims(model: str) -> int:
    name = model.rsplit("/", 1)[-1].lower()
    for prefix, dims in _EMBEDDING_DIMS.items():
        if name.startswith(prefix):
            return dims
    return 768


def _offline_embedding(model: str, text: str) -> list[float]:
    """A unit vector derived from SHA-256 of (model, text): equal texts embed equally, others differ."""
    dims = _dims(model)
    raw = b""
    counter = 0
    while len(raw) < dims * 4:
        raw += hashlib.sha256(f"{model}\0{counter}\0{text}".encode()).digest()
        counter += 1
    values = [(v / 0xFFFFFFFF) * 2 - 1 for v in struct.unpack(f"<{dims}I", raw[: dims * 4])]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


async def _sse_chunks(text: str, usage: dict[str, Any]) -> AsyncIterator[bytes]:
    for i, word in enumerate(text.split(" ")):
        piece = word if i == 0 else " " + word
        yield f"data: {json.dumps({'response': piece})}\n\n".encode()
    yield f"data: {json.dumps({'response': '', 'usage': usage})}\n\n".encode()
    yield b"data: [DONE]\n\n"


class _SSEStream:
    """`run(..., {"stream": True})`: server-sent events as Workers AI streams them (async iterable of bytes)."""

    def __init__(self, text: str, usage: dict[str, Any]) -> None:
        self._text = text
        self._usage = usage

    def __aiter__(self) -> AsyncIterator[bytes]:
        return _sse_chunks(self._text, self._usage)


def _sse(text: str, usage: dict[str, Any]) -> _SSEStream:
    return _SSEStream(text, usage)


class AIService(Service):
    """The `[ai]` binding of a runtime."""

    kind = "ai"

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self._ai: Ai | None = None
        self._warned = False

    async def start(self) -> None:
        cfg = self.host.config
        values = {**{k: v for k, v in cfg.vars.items() if isinstance(v, str)}, **cfg.secrets}
        config = AIConfigFromEnv(values)
        self._ai = Ai(config, service=self)
        if config.base_url:
            self.host.log.info("Workers AI binding %s -> OpenAI-compatible server at %s", cfg.ai.binding, config.base_url)

    def note_offline(self) -> None:
        if not self._warned:
            self._warned = True
            self.host.log.warning("Workers AI: no CFEMU_AI_BASE_URL is set, so %s answers; its replies are "
                                  "placeholders, not model output", OFFLINE_LABEL)

    def bindings(self) -> dict[str, Any]:
        return {self.host.config.ai.binding: self._ai} if self._ai is not None else {}

    async def close(self) -> None:
        if self._ai is not None:
            await self._ai._aclose()

    def abandon(self) -> None:
        ai = self._ai
        if ai is not None and ai._session is not None and not ai._session.closed:
            try:
                asyncio.get_running_loop().create_task(ai._session.close())
            except RuntimeError:
                pass
