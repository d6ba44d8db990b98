"""The Workers AI binding: the offline responder, and an OpenAI-compatible server started by the test."""

from __future__ import annotations

import asyncio
import json
import math

import pytest
from aiohttp import web

from cfemu.ai import OFFLINE_LABEL, InferenceUpstreamError
from cfemu.testing import Runtime

WORKER = """
from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        body = await request.json()
        try:
            answer = await self.env.AI.run(body["model"], body["inputs"])
        except Exception as error:
            return Response.json({"error": str(error), "name": getattr(error, "name", "")}, status=500)
        return Response.json(answer)
"""


@pytest.fixture
def config(tmp_path, write_worker, monkeypatch):
    for name in ("CFEMU_AI_BASE_URL", "CFEMU_AI_MODEL", "CFEMU_AI_EMBEDDING_MODEL", "CFEMU_AI_API_KEY", "CFEMU_AI_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    return write_worker(tmp_path / "app", WORKER, '[ai]\nbinding = "AI"\n')


async def ask(rt, model, inputs):
    resp = await rt.fetch("/", method="POST", json={"model": model, "inputs": inputs})
    return resp.status, await resp.json()


# -- offline ------------------------------------------------------------------------------------


async def test_offline_text_generation_is_labelled_and_deterministic(config):
    async with Runtime.from_config(config) as rt:
        status, first = await ask(rt, "@cf/meta/llama-3.1-8b-instruct", {"prompt": "What is KV?"})
        assert status == 200
        assert first["response"].startswith(OFFLINE_LABEL)
        assert '"What is KV?"' in first["response"] and "CFEMU_AI_BASE_URL" in first["response"]
        assert set(first["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
        _, again = await ask(rt, "@cf/meta/llama-3.1-8b-instruct", {"prompt": "What is KV?"})
        assert again == first
        _, other = await ask(rt, "@cf/meta/llama-3.1-8b-instruct", {"prompt": "Something else"})
        assert other["response"] != first["response"]
        messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}]
        _, chat = await ask(rt, "@hf/mistral/mistral-7b-instruct-v0.2", {"messages": messages, "max_tokens": 5})
        assert chat["response"].split(" ")[:2] == OFFLINE_LABEL.split(" ")[:2]
        assert len(chat["response"].split(" ")) == 5


async def test_offline_embeddings(config):
    async with Runtime.from_config(config) as rt:
        result = await rt.env.AI.run("@cf/baai/bge-small-en-v1.5", {"text": ["hello", "world", "hello"]})
        assert result["shape"] == [3, 384] and len(result["data"]) == 3
        assert all(len(v) == 384 for v in result["data"])
        assert result["data"][0] == result["data"][2] != result["data"][1]
        assert math.isclose(math.sqrt(sum(x * x for x in result["data"][0])), 1.0, abs_tol=1e-4)
        base = await rt.env.AI.run("@cf/baai/bge-base-en-v1.5", {"text": "one"})
        assert base["shape"] == [1, 768]
        assert (await rt.env.AI.run("@cf/baai/bge-large-en-v1.5", {"text": ["x"]}))["shape"] == [1, 1024]


async def test_offline_stream(config):
    async with Runtime.from_config(config) as rt:
        stream = await rt.env.AI.run("@cf/meta/llama-3.1-8b-instruct", {"prompt": "hi", "stream": True})
        events = b"".join([chunk async for chunk in stream]).decode().split("\n\n")
        assert events[-2] == "data: [DONE]" and events[-1] == ""
        pieces = [json.loads(e[len("data: "):])["response"] for e in events[:-2]]
        text = "".join(pieces)
        assert text == (await rt.env.AI.run("@cf/meta/llama-3.1-8b-instruct", {"prompt": "hi"}))["response"]


async def test_errors(config):
    async with Runtime.from_config(config) as rt:
        status, answer = await ask(rt, "gpt-4o", {"prompt": "x"})
        assert status == 500 and answer == {"error": "5007: No such model gpt-4o or task", "name": "InferenceUpstreamError"}
        ai = rt.env.AI
        cases = [
            (ai.run("@cf/meta/llama-3.1-8b-instruct", {}),
             "5006: Error: oneOf at '/' not met, 0 matches: required properties at '/' are 'prompt', "
             "required properties at '/' are 'messages'"),
            (ai.run("@cf/meta/llama-3.1-8b-instruct", {"prompt": "a", "messages": []}),
             "5006: Error: oneOf at '/' not met, 0 matches: required properties at '/' are 'prompt', "
             "required properties at '/' are 'messages'"),
            (ai.run("@cf/meta/llama-3.1-8b-instruct", {"prompt": 5}), "5006: Error: must be string at '/prompt'"),
            (ai.run("@cf/meta/llama-3.1-8b-instruct", {"messages": [{"role": "user"}]}),
             "5006: Error: required properties at '/messages/0' are 'content'"),
            (ai.run("@cf/baai/bge-small-en-v1.5", {"prompt": "x"}), "5006: Error: required properties at '/' are 'text'"),
            (ai.run("@cf/openai/whisper", {"audio": []}),
             "cfemu emulates the text generation and text embeddings tasks of Workers AI only; "
             "@cf/openai/whisper is a model for automatic speech recognition"),
            (ai.run("@cf/meta", {"prompt": "x"}), "5007: No such model @cf/meta or task"),
        ]
        for call, message in cases:
            with pytest.raises(InferenceUpstreamError) as info:
                await call
            assert str(info.value) == message


# -- an OpenAI-compatible server ------------------------------------------------------------------


@pytest.fixture
async def fake_server():
    """An OpenAI-compatible server on 127.0.0.1 (port 0) recording what it was asked."""
    seen: list[tuple[str, dict, dict]] = []
    behaviour = {"mode": "ok"}
    never = asyncio.Event()

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        seen.append((request.path, body, dict(request.headers)))
        if behaviour["mode"] == "stream" and body.get("stream"):
            resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await resp.prepare(request)
            for piece in ["Hel", "lo"]:
                chunk = {"choices": [{"index": 0, "delta": {"content": piece}}]}
                await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
            await behaviour["release"].wait()  # the test reads the first pieces before the rest exists
            if behaviour.get("stall"):
                await never.wait()
            chunk = {"choices": [{"index": 0, "delta": {"content": " world"}}]}
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
            usage = {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}
            await resp.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\ndata: [DONE]\n\n".encode())
            return resp
        if behaviour["mode"] == "badbytes":
            return web.Response(body=b"\xff\xfe not utf-8", status=500, content_type="text/plain", charset="utf-8")
        if behaviour["mode"] == "badusage":
            return web.json_response({"choices": [{"message": {"content": "ok"}}], "usage": "lots"})
        if behaviour["mode"] == "error":
            return web.json_response({"error": {"message": "model not loaded"}}, status=503)
        if behaviour["mode"] == "hang":
            await never.wait()
        if behaviour["mode"] == "garbage":
            return web.Response(text="<html>nope</html>")
        last = body["messages"][-1]["content"]
        return web.json_response({
            "id": "x", "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": f"echo: {last}"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        })

    async def embeddings(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append((request.path, body, dict(request.headers)))
        if behaviour["mode"] == "badembedding":
            return web.json_response({"data": [1, 2]})
        data = [{"index": i, "embedding": [float(len(t)), 1.0, 0.0]} for i, t in enumerate(body["input"])]
        return web.json_response({"object": "list", "data": list(reversed(data)), "model": body["model"]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/embeddings", embeddings)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield {"url": f"http://127.0.0.1:{port}", "seen": seen, "behaviour": behaviour}
    never.set()
    await runner.cleanup()


async def test_text_generation_through_the_server(config, fake_server, monkeypatch):
    monkeypatch.setenv("CFEMU_AI_BASE_URL", fake_server["url"])  # no path: /v1 is added
    monkeypatch.setenv("CFEMU_AI_MODEL", "@cf/meta/llama-3.1-8b-instruct=llama3.1:8b,qwen2.5")
    monkeypatch.setenv("CFEMU_AI_API_KEY", "sk-local")
    async with Runtime.from_config(config) as rt:
        status, answer = await ask(rt, "@cf/meta/llama-3.1-8b-instruct",
                                   {"messages": [{"role": "user", "content": "ping"}], "max_tokens": 32, "temperature": 0.2})
        assert status == 200
        assert answer == {"response": "echo: ping", "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
        path, body, headers = fake_server["seen"][-1]
        assert path == "/v1/chat/completions"
        assert body == {"model": "llama3.1:8b", "messages": [{"role": "user", "content": "ping"}], "max_tokens": 32,
                        "stream": False, "temperature": 0.2}
        assert headers["Authorization"] == "Bearer sk-local"
        # A prompt becomes one user message; an unmapped model goes to the default server model.
        _, answer = await ask(rt, "@cf/qwen/qwen1.5-7b-chat-awq", {"prompt": "pong"})
        assert answer["response"] == "echo: pong"
        assert fake_server["seen"][-1][1]["model"] == "qwen2.5"
        assert fake_server["seen"][-1][1]["max_tokens"] == 256


async def test_embeddings_through_the_server(config, fake_server, monkeypatch):
    monkeypatch.setenv("CFEMU_AI_BASE_URL", fake_server["url"] + "/v1")
    monkeypatch.setenv("CFEMU_AI_EMBEDDING_MODEL", "nomic-embed-text")
    async with Runtime.from_config(config) as rt:
        result = await rt.env.AI.run("@cf/baai/bge-base-en-v1.5", {"text": ["a", "abc"]})
        assert result == {"shape": [2, 3], "data": [[1.0, 1.0, 0.0], [3.0, 1.0, 0.0]]}
        assert fake_server["seen"][-1][1] == {"model": "nomic-embed-text", "input": ["a", "abc"]}


async def test_server_failures_are_clear_errors(config, fake_server, monkeypatch):
    monkeypatch.setenv("CFEMU_AI_BASE_URL", fake_server["url"])
    monkeypatch.setenv("CFEMU_AI_TIMEOUT", "0.2")
    url = fake_server["url"] + "/v1/chat/completions"
    async with Runtime.from_config(config) as rt:
        fake_server["behaviour"]["mode"] = "error"
        with pytest.raises(InferenceUpstreamError) as info:
            await rt.env.AI.run("@cf/meta/llama-3.1-8b-instruct", {"prompt": "x"})
        assert str(info.value) == f'cfemu: the AI server at {url} answered 503: {{"error": {{"message": "model not loaded"}}}}'
        fake_server["behaviour"]["mode"] = "garbage"
        with pytest.raises(InferenceUpstreamError) as info:
            await rt.env.AI.run("@cf/meta/llama-3.1-8b-instruct", {"prompt": "x"})
        assert str(info.value) == f"cfemu: the AI server at {url} sent something that is not JSON: <html>nope</html>"
        fake_server["behaviour"]["mode"] = "hang"
        with pytest.raises(InferenceUpstreamError) as info:
            await rt.env.AI.run("@cf/meta/llama-3.1-8b-instruct", {"prompt": "x"})
        assert str(info.value) == f"cfemu: the AI server at {url} did not answer within 0.2 s"


async def test_unreachable_server(config, monkeypatch):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("CFEMU_AI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    async with Runtime.from_config(config) as rt:
        with pytest.raises(InferenceUpstreamError) as info:
            await rt.env.AI.run("@cf/meta/llama-3.1-8b-instruct", {"prompt": "x"})
        assert str(info.value).startswith(f"cfemu: cannot reach the AI server at http://127.0.0.1:{port}/v1/chat/completions: ")


async def test_base_url_from_dev_vars(tmp_path, write_worker, fake_server, monkeypatch):
    monkeypatch.delenv("CFEMU_AI_BASE_URL", raising=False)
    config = write_worker(tmp_path / "app", WORKER, '[ai]\nbinding = "AI"\n',
                          files={".dev.vars": f"CFEMU_AI_BASE_URL={fake_server['url']}\n"})
    async with Runtime.from_config(config) as rt:
        assert (await rt.env.AI.run("@cf/meta/llama-3.1-8b-instruct", {"prompt": "dv"}))["response"] == "echo: dv"


async def test_offline_responder_says_so_in_the_log(config, caplog):
    import logging

    with caplog.at_level(logging.WARNING):
        async with Runtime.from_config(config) as rt:
            await rt.env.AI.run("@cf/meta/llama-3.1-8b-instruct", {"prompt": "a"})
            await rt.env.AI.run("@cf/meta/llama-3.1-8b-instruct", {"prompt": "b"})
    warnings = [r.getMessage() for r in caplog.records if "offline AI responder" in r.getMessage()]
    assert len(warnings) == 1 and "CFEMU_AI_BASE_URL" in warnings[0]


async def test_odd_server_answers_are_clear_errors(config, fake_server, monkeypatch):
    monkeypatch.setenv("CFEMU_AI_BASE_URL", fake_server["url"])
    url = fake_server["url"] + "/v1"
    async with Runtime.from_config(config) as rt:
        fake_server["behaviour"]["mode"] = "badbytes"
        with pytest.raises(InferenceUpstreamError) as info:
            await rt.env.AI.run("@cf/meta/llama-3.1-8b-instruct", {"prompt": "x"})
        assert str(info.value) == f"cfemu: the AI server at {url}/chat/completions answered 500: \ufffd\ufffd not utf-8"
        fake_server["behaviour"]["mode"] = "badusage"
        answer = await rt.env.AI.run("@cf/meta/llama-3.1-8b-instruct", {"prompt": "x"})
        assert answer == {"response": "ok", "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}
        fake_server["behaviour"]["mode"] = "badembedding"
        with pytest.raises(InferenceUpstreamError) as info:
            await rt.env.AI.run("@cf/baai/bge-base-en-v1.5", {"text": "x"})
        assert str(info.value) == 'cfemu: the AI server\'s answer has no data[].embedding: {"data": [1, 2]}'


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
async def test_a_timeout_that_could_hang_is_refused(config, monkeypatch, value):
    from cfemu.errors import ConfigError

    monkeypatch.setenv("CFEMU_AI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("CFEMU_AI_TIMEOUT", value)
    with pytest.raises(ConfigError) as info:
        async with Runtime.from_config(config):
            pass
    assert str(info.value) == f"CFEMU_AI_TIMEOUT must be a positive number of seconds, not {value!r}"


async def test_streaming_passes_the_server_stream_through(config, fake_server, monkeypatch):
    monkeypatch.setenv("CFEMU_AI_BASE_URL", fake_server["url"])
    fake_server["behaviour"].update(mode="stream", release=asyncio.Event())
    async with Runtime.from_config(config) as rt:
        stream = await rt.env.AI.run("@cf/meta/llama-3.1-8b-instruct", {"prompt": "hi", "stream": True})
        assert fake_server["seen"][-1][1]["stream"] is True
        chunks = stream.__aiter__()
        # The first pieces arrive while the server is still generating (nothing is buffered).
        first = await asyncio.wait_for(chunks.__anext__(), 5)
        assert first == b'data: {"response": "Hel"}\n\n'
        fake_server["behaviour"]["release"].set()
        rest = b"".join([chunk async for chunk in chunks])
        events = (first + rest).decode().split("\n\n")
        assert events[-2:] == ["data: [DONE]", ""]
        pieces = [json.loads(e[len("data: "):]) for e in events[:-2]]
        assert "".join(p["response"] for p in pieces) == "Hello world"
        assert pieces[-1]["usage"] == {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}


async def test_a_stalled_stream_fails_instead_of_hanging(config, fake_server, monkeypatch):
    monkeypatch.setenv("CFEMU_AI_BASE_URL", fake_server["url"])
    monkeypatch.setenv("CFEMU_AI_TIMEOUT", "0.3")
    fake_server["behaviour"].update(mode="stream", release=asyncio.Event(), stall=True)
    fake_server["behaviour"]["release"].set()
    url = fake_server["url"] + "/v1/chat/completions"
    async with Runtime.from_config(config) as rt:
        stream = await rt.env.AI.run("@cf/meta/llama-3.1-8b-instruct", {"prompt": "hi", "stream": True})
        got = []
        with pytest.raises(InferenceUpstreamError) as info:
            async for chunk in stream:
                got.append(chunk)
        assert len(got) == 2
        assert str(info.value) == f"cfemu: the AI server at {url} sent nothing for 0.3 s"


async def test_the_binding_shows_only_run(config):
    async with Runtime.from_config(config) as rt:
        assert not hasattr(rt.env.AI, "close")
        assert callable(rt.env.AI.run)


async def test_numeric_inputs_are_checked_for_prompts_too(config):
    async with Runtime.from_config(config) as rt:
        model = "@cf/meta/llama-3.1-8b-instruct"
        for inputs, message in [
            ({"prompt": "x", "max_tokens": "lots"}, "5006: Error: must be integer at '/max_tokens'"),
            ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 2.5}, "5006: Error: must be integer at '/max_tokens'"),
            ({"prompt": "x", "temperature": "hot"}, "5006: Error: must be number at '/temperature'"),
        ]:
            with pytest.raises(InferenceUpstreamError) as info:
                await rt.env.AI.run(model, inputs)
            assert str(info.value) == message
        assert (await rt.env.AI.run(model, {"prompt": "x", "temperature": 0, "max_tokens": 3}))["response"]


@pytest.mark.parametrize("value", ["notaurl", "ftp://127.0.0.1/v1", "http://[::1", "http:///v1"])
async def test_a_base_url_that_is_not_http_is_refused_at_start(config, monkeypatch, value):
    from cfemu.errors import ConfigError

    monkeypatch.setenv("CFEMU_AI_BASE_URL", value)
    with pytest.raises(ConfigError) as info:
        async with Runtime.from_config(config):
            pass
    assert str(info.value) == f"CFEMU_AI_BASE_URL must be an http:// or https:// URL, not {value!r}"
