"""The fake upstream speaks the wire formats the official SDKs expect."""

import anthropic
import httpx
import openai
import pytest

from fakeupstream import ANTHROPIC_KEY, OPENAI_KEY, Script


@pytest.fixture(autouse=True)
def _reset(fake):
    """The session's fake (tests/conftest.py), with nothing served or scripted yet."""
    fake.reset()


def oa(fake, **kw):
    return openai.OpenAI(base_url=fake.base_url + "/v1", api_key=OPENAI_KEY, max_retries=0, **kw)


def an(fake, **kw):
    return anthropic.Anthropic(base_url=fake.base_url, api_key=ANTHROPIC_KEY, max_retries=0, **kw)


MSGS = [{"role": "user", "content": "say five words please"}]


def test_chat_non_stream_and_stream_with_usage(fake):
    r = oa(fake).chat.completions.create(model="gpt-4o-mini", messages=MSGS, max_tokens=5)
    # prompt: 4 words + 4 per message + 3 = 11; reply capped at max_tokens 5
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (11, 5)
    assert r.choices[0].message.content == "w0 w1 w2 w3 w4 "
    chunks = list(
        oa(fake).chat.completions.create(
            model="gpt-4o-mini", messages=MSGS, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12
    assert all(c.usage is None for c in chunks[:-1])
    plain = list(oa(fake).chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in plain) == "".join(
        f"w{i} " for i in range(12)
    )
    assert [s.completed for s in fake.served] == [True, True, True]


def test_responses_stream_and_embeddings_and_models(fake):
    events = list(oa(fake).responses.create(model="o3", input="hello there", stream=True))
    assert events[-1].type == "response.completed"
    assert events[-1].response.usage.input_tokens == 5
    r = oa(fake).responses.create(model="o3", input="hello there", max_output_tokens=3)
    assert r.output_text == "w0 w1 w2 " and r.status == "incomplete"
    e = oa(fake).embeddings.create(model="text-embedding-3-small", input=["a b", "c"])
    assert e.usage.prompt_tokens == 3 and len(e.data) == 2
    assert "gpt-4o-mini" in [m.id for m in oa(fake).models.list()]


def test_anthropic_messages_stream_count_tokens(fake):
    fake.script(Script(cached_tokens=2, cache_write_tokens=3))
    with an(fake).messages.stream(model="claude-sonnet-4-5", max_tokens=100, messages=MSGS) as s:
        final = s.get_final_message()
    # input: 4 words + 3 + 1 = 8 → 2 cache read, 3 cache write, 3 uncached; output cumulative 12
    assert (final.usage.input_tokens, final.usage.cache_read_input_tokens) == (3, 2)
    assert (final.usage.cache_creation_input_tokens, final.usage.output_tokens) == (3, 12)
    count = an(fake).messages.count_tokens(model="claude-sonnet-4-5", messages=MSGS)
    assert count.input_tokens == 8
    no_max = httpx.post(
        fake.base_url + "/v1/messages",
        json={"model": "claude-sonnet-4-5", "messages": MSGS},
        headers={"x-api-key": ANTHROPIC_KEY, "anthropic-version": "2023-06-01"},
    )
    assert no_max.status_code == 400 and no_max.json()["error"]["type"] == "invalid_request_error"


def test_faults(fake):
    fake.script(Script(status=429, retry_after=7))
    with pytest.raises(openai.RateLimitError) as err:
        oa(fake).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert err.value.response.headers["retry-after"] == "7"
    fake.script(Script(status=529))
    with pytest.raises(anthropic.APIStatusError) as aerr:
        an(fake).messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=MSGS)
    assert aerr.value.status_code == 529
    fake.script(Script(cut_after_events=3))
    with pytest.raises(openai.APIError):
        list(oa(fake).chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True))
    assert fake.served[-1].completed is False and fake.served[-1].events_sent == 3
    fake.script(Script(hang=True))
    with pytest.raises(openai.APITimeoutError):
        oa(fake, timeout=0.5).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    r = openai.OpenAI(base_url=fake.base_url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        r.models.list()


def test_header_script_and_wrong_usage(fake):
    r = oa(fake).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSGS, extra_headers={"x-fake-script": '{"usage": "missing"}'}
    )
    assert r.parse().usage is None
    fake.script(Script(usage="wrong"))
    r2 = oa(fake).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert r2.usage.prompt_tokens == 110
    assert fake.served[-1].generated["prompt"] == 11


def test_the_served_record_is_readable_over_http(fake):
    list(oa(fake).chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True))
    served = httpx.get(fake.base_url + "/_fake/served", timeout=5).json()
    assert served[-1]["path"] == "/v1/chat/completions" and served[-1]["completed"] is True
    assert "data: [DONE]" in served[-1]["raw_out"]
    assert '"gpt-4o-mini"' in served[-1]["raw_in"]


def test_a_wrongly_shaped_body_is_refused_like_the_real_apis(fake):
    with pytest.raises(openai.BadRequestError) as oa_err:
        oa(fake).chat.completions.create(model="gpt-4o-mini", messages=5)
    assert oa_err.value.body["type"] == "invalid_request_error"
    with pytest.raises(anthropic.BadRequestError) as an_err:
        an(fake).messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=5)
    assert an_err.value.body["error"]["type"] == "invalid_request_error"
    assert [s.status for s in fake.served] == [400, 400]
