"""A keyless caller is its program, the script it runs and its OS user; an approval lasts as
long as chosen (once, 15 min, 1 h, until the program exits, until revoked); a denied program
is told the owner said no (``consent_denied``). Real scripts in subprocesses, a real engine."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest

from aiwallet.engine.peer import ProcessInfo, still_running
from engine.conftest import cli, make_rig
from engine.other_user import CLIENT, SYSTEM_PYTHON, as_user, second_user
from waiting import wait_until

SCRIPT = textwrap.dedent("""
    import json, sys, openai
    client = openai.OpenAI(base_url=sys.argv[1], api_key="none", max_retries=0, timeout=30)
    def call():
        try:
            msgs = [{"role": "user", "content": "hi"}]
            r = client.chat.completions.create(model="gpt-4o-mini", messages=msgs)
            return {"ok": r.choices[0].message.content}
        except openai.APIStatusError as e:
            return {"status": e.status_code, "body": e.body}
    print(json.dumps(call()), flush=True)
    if len(sys.argv) > 2:  # "twice": a second call once told to, then exit when told to
        sys.stdin.readline()
        print(json.dumps(call()), flush=True)
        sys.stdin.readline()
""")
MSGS_BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def patient(tmp_path, fake):
    """An engine whose prompts wait long enough for a test to answer them."""
    fake.reset()
    rig = make_rig(tmp_path / "patient", fake, consent_timeout_s=20)
    yield rig
    rig.engine.stop()
    rig.wallet.close()


@pytest.fixture
def scripts(tmp_path) -> Path:
    """A folder with a.py and b.py: the same client, two programs."""
    folder = tmp_path / "scripts"
    folder.mkdir()
    for name in ("a.py", "b.py"):
        (folder / name).write_text(SCRIPT)
    return folder


def run(rig, folder: Path, name: str, *extra: str, stdin=None) -> subprocess.Popen[str]:
    """``python NAME URL`` run in ``folder`` (so the engine must resolve a relative path)."""
    return subprocess.Popen(
        [sys.executable, name, rig.url + "/v1", *extra],
        stdout=subprocess.PIPE,
        stdin=stdin,
        text=True,
        cwd=folder,
    )


def result(proc: subprocess.Popen[str]) -> dict:
    return json.loads(proc.communicate(timeout=60)[0])


def pending(capsys, rig) -> list[dict]:
    code, out, err = cli(capsys, rig, "consent", "pending", "--json")
    assert code == 0, err
    return json.loads(out)


def one_prompt(capsys, rig, what: str) -> dict:
    [req] = wait_until(lambda: pending(capsys, rig), what=what)
    return req


def answer(capsys, rig, verb: str, req_id: str, *args: str) -> dict | None:
    code, out, err = cli(capsys, rig, "consent", verb, req_id, *args, "--json")
    assert code == 0, err
    return json.loads(out) if out.strip() else None


def test_a_remembered_script_serves_that_script_only(capsys, patient, scripts):
    first = run(patient, scripts, "a.py")
    req = one_prompt(capsys, patient, "a.py's prompt")
    a_path = str((scripts / "a.py").resolve())
    assert req["process"]["script"] == a_path and req["process"]["pid"] == first.pid
    assert req["app_name"] == "a.py"  # named after the script...
    interpreter = os.path.basename(req["process"]["exe"])
    assert req["process_label"] == f"a.py ({interpreter}, pid {first.pid})"  # ...with detail
    code, _, err = cli(capsys, patient, "consent", "approve", req["id"], "--budget", "1/day")
    assert code == 0, err
    assert "ok" in result(first)
    assert [a.name for a in patient.wallet.apps.list()] == ["a.py"]
    [rule] = patient.wallet.consent_rules.list()
    assert json.loads(rule.subject)["script"] == a_path
    # a.py again: served by the remembered rule, no prompt
    assert "ok" in result(run(patient, scripts, "a.py"))
    assert len(patient.fake.served) == 2
    # b.py, same interpreter and user: asked about separately
    other = run(patient, scripts, "b.py")
    req_b = one_prompt(capsys, patient, "b.py's prompt")
    assert req_b["app_name"] == "b.py" and req_b["process"]["script"].endswith("/b.py")
    cli(capsys, patient, "consent", "deny", req_b["id"], "--always")
    denied = result(other)
    assert denied["status"] == 403 and denied["body"]["code"] == "consent_denied"
    assert "for good" in denied["body"]["message"] and "consent list" in denied["body"]["message"]
    # denied always: refused at once, with no prompt, saying so
    again = result(run(patient, scripts, "b.py"))
    assert again["body"]["code"] == "consent_denied" and "for good" in again["body"]["message"]
    assert len(patient.fake.served) == 2 and pending(capsys, patient) == []


def test_widening_to_any_script_is_explicit(capsys, patient, scripts):
    first = run(patient, scripts, "a.py")
    req = one_prompt(capsys, patient, "a.py's prompt")
    code, out, err = cli(capsys, patient, "consent", "approve", req["id"], "--any-script")
    assert code == 0, err
    assert "any script" in out
    assert "ok" in result(first)
    [rule] = patient.wallet.consent_rules.list()
    assert json.loads(rule.subject)["script"] == "*"
    assert "ok" in result(run(patient, scripts, "b.py"))  # any script of this interpreter
    assert pending(capsys, patient) == []


def test_a_denial_widened_to_any_script(capsys, patient, scripts):
    first = run(patient, scripts, "b.py")
    req = one_prompt(capsys, patient, "b.py's prompt")
    code, _, err = cli(capsys, patient, "consent", "deny", req["id"], "--always", "--any-script")
    assert code == 0, err
    assert result(first)["body"]["code"] == "consent_denied"
    [rule] = patient.wallet.consent_rules.list()
    assert rule.decision == "deny" and json.loads(rule.subject)["script"] == "*"
    refused = result(run(patient, scripts, "a.py"))  # another script: refused, not asked
    assert refused["body"]["code"] == "consent_denied" and "for good" in refused["body"]["message"]
    assert pending(capsys, patient) == [] and patient.fake.served == []


def test_a_remembered_script_does_not_serve_another_os_user(capsys, patient):
    """The same interpreter running the same script file, as a second OS user: prompted."""
    user = second_user()
    folder = Path(tempfile.mkdtemp(prefix="aiwallet-shared-"))
    try:
        folder.chmod(0o755)
        script = folder / "a.py"
        script.write_text(CLIENT)
        script.chmod(stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)
        host, port = patient.url.removeprefix("http://").rsplit(":", 1)
        args = [SYSTEM_PYTHON, "a.py", host, port, "POST", "/v1/chat/completions", ""]
        args.append(json.dumps(MSGS_BODY))

        def start(as_whom):
            return subprocess.Popen(
                as_user(as_whom, args), stdout=subprocess.PIPE, text=True, cwd=folder
            )

        mine = start(None)
        req = one_prompt(capsys, patient, "my a.py's prompt")
        assert req["app_name"] == "a.py" and req["process"]["script"] == str(script)
        cli(capsys, patient, "consent", "approve", req["id"])
        assert result(mine)["status"] == 200
        assert result(start(None))["status"] == 200  # remembered for me
        theirs = start(user)
        req2 = one_prompt(capsys, patient, "the other user's prompt")
        assert req2["process"]["uid"] == user.pw_uid
        assert req2["process"]["script"] == str(script)
        cli(capsys, patient, "consent", "deny", req2["id"])
        out = result(theirs)
        assert out["status"] == 403 and out["body"]["error"]["code"] == "consent_denied"
        assert len(patient.fake.served) == 2
    finally:
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()


def test_until_it_exits_ends_with_the_process(capsys, patient, scripts):
    patient.engine.consent.exit_check_s = 0.05  # how often the engine looks (not a wait here)
    ended: list[dict] = []
    patient.engine.events.subscribe(
        lambda name, payload: ended.append(payload) if name == "consent.ended" else None
    )
    proc = run(patient, scripts, "a.py", "twice", stdin=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    req = one_prompt(capsys, patient, "a.py's prompt")
    approved = answer(capsys, patient, "approve", req["id"], "--for", "exit")
    assert approved is not None and approved["answer"]["duration"] == "exit"
    assert not approved["answer"]["remembered"]
    assert "ok" in json.loads(proc.stdout.readline())
    proc.stdin.write("again\n")
    proc.stdin.flush()
    assert "ok" in json.loads(proc.stdout.readline())  # the same process: still served
    assert patient.wallet.consent_rules.list() == []  # nothing remembered
    [app] = patient.wallet.apps.list()
    assert app.revoked_at is None
    proc.communicate("bye\n", timeout=30)  # the program exits
    wait_until(lambda: ended, what="the grant to end with its process")
    assert ended == [{"app": "a.py", "pid": proc.pid}]
    assert patient.wallet.apps.get("a.py").revoked_at is not None
    assert patient.engine.consent.until_exit == {}
    # the same script run again is a new process: asked again
    again = run(patient, scripts, "a.py")
    req2 = one_prompt(capsys, patient, "the new process's prompt")
    assert req2["process"]["pid"] == again.pid
    cli(capsys, patient, "consent", "deny", req2["id"])
    assert result(again)["body"]["code"] == "consent_denied"


def test_an_engine_restart_ends_until_it_exits_grants(capsys, patient, scripts):
    proc = run(patient, scripts, "a.py", "twice", stdin=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        req = one_prompt(capsys, patient, "a.py's prompt")
        answer(capsys, patient, "approve", req["id"], "--for", "exit")
        assert "ok" in json.loads(proc.stdout.readline())
        kept = run(patient, scripts, "b.py")  # an ordinary grant, for contrast
        answer(capsys, patient, "approve", one_prompt(capsys, patient, "b.py")["id"])
        assert "ok" in result(kept)
        patient.engine.stop()
        # a new engine cannot watch a process it never saw: the grant ends with the restart
        engine = patient.wallet.new_engine(port=0, consent_timeout_s=1)
        engine.start()
        engine.stop()
        assert patient.wallet.apps.get("a.py").revoked_at is not None
        assert patient.wallet.apps.get("b.py").revoked_at is None
    finally:
        proc.kill()
        proc.wait()


def test_a_reused_pid_is_not_the_same_process():
    me = psutil.Process()
    started = me.create_time()
    assert still_running([(me.pid, started), (me.pid, started - 5.0)]) == [True, False]
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert still_running([(gone.pid, None)]) == [False]
    a = ProcessInfo(7, "/usr/bin/python3", (), "ana", 1000, "/a.py", started)
    assert not a.same_process(ProcessInfo(7, "/usr/bin/python3", (), "ana", 1000, "/a.py", 1.0))


def test_a_quarter_hour_approval_expires_with_its_grant_and_rule(capsys, patient, scripts):
    proc = run(patient, scripts, "a.py")
    req = one_prompt(capsys, patient, "a.py's prompt")
    before = datetime.now(UTC)
    approved = answer(capsys, patient, "approve", req["id"], "--for", "15m")
    after = datetime.now(UTC)
    assert approved is not None and "ok" in result(proc)
    expires = datetime.fromisoformat(approved["answer"]["expires_at"])
    assert before + timedelta(minutes=15) <= expires <= after + timedelta(minutes=15)
    [app] = patient.wallet.apps.list()
    grant = patient.wallet.apps.grant(app.id)
    assert grant is not None and grant.expires_at == expires
    assert grant.active_at(expires - timedelta(seconds=1))
    assert not grant.active_at(expires)
    [rule] = patient.wallet.consent_rules.list()
    assert rule.expires_at == expires  # the rule is not remembered past the grant
    assert rule.active_at(expires - timedelta(seconds=1)) and not rule.active_at(expires)
    # an hour: the same, sixty minutes
    hour = run(patient, scripts, "b.py")
    req_b = one_prompt(capsys, patient, "b.py's prompt")
    approved_b = answer(capsys, patient, "approve", req_b["id"], "--for", "1h")
    assert approved_b is not None and "ok" in result(hour)
    span = datetime.fromisoformat(approved_b["answer"]["expires_at"]) - before
    assert timedelta(minutes=60) <= span < timedelta(minutes=61)


def test_an_expired_prompt_is_not_a_denial(rig, scripts):
    out = result(run(rig, scripts, "a.py"))  # rig's prompts expire after 0.3 s
    assert out["status"] == 403 and out["body"]["code"] == "consent_required"
    assert "nobody answered" in out["body"]["message"]


def test_bad_durations_and_scopes_are_refused(capsys, patient, scripts):
    proc = run(patient, scripts, "a.py")
    req = one_prompt(capsys, patient, "a.py's prompt")
    consent = patient.engine.consent
    import asyncio

    from aiwallet.engine.errors import ProxyError

    for kw in ({"duration": "forever"}, {"scope": "everything"}):
        with pytest.raises(ProxyError) as err:
            asyncio.run_coroutine_threadsafe(
                consent.approve(req["id"], **kw), patient.engine.loop
            ).result(10)
        assert err.value.code == "invalid_request"
    cli(capsys, patient, "consent", "deny", req["id"])
    assert result(proc)["body"]["code"] == "consent_denied"


def test_rules_from_before_the_script_count_only_when_they_deny(capsys, patient, scripts):
    """An allow remembered as {"exe", "owner"} (issue 12) would serve every script of the
    interpreter: it serves none; a deny remembered that way still refuses."""
    first = run(patient, scripts, "a.py")
    req = one_prompt(capsys, patient, "a.py's prompt")
    cli(capsys, patient, "consent", "deny", req["id"])
    assert result(first)["body"]["code"] == "consent_denied"
    proc = req["process"]
    old = ProcessInfo(proc["pid"], proc["exe"], (), proc["user"], proc["uid"]).legacy_subject
    assert old is not None and set(json.loads(old)) == {"exe", "owner"}
    key = patient.app("old-python", budget="1/day")
    assert key
    [app] = patient.wallet.apps.list()
    patient.wallet.consent_rules.add("program", old, "allow", app_id=app.id)
    again = run(patient, scripts, "a.py")
    req2 = one_prompt(capsys, patient, "a.py's prompt despite the old allow")
    cli(capsys, patient, "consent", "deny", req2["id"])
    assert result(again)["body"]["code"] == "consent_denied"
    patient.wallet.consent_rules.add("program", old, "deny")
    refused = result(run(patient, scripts, "b.py"))
    assert refused["body"]["code"] == "consent_denied" and "for good" in refused["body"]["message"]
    assert patient.fake.served == [] and pending(capsys, patient) == []


def test_an_unresolved_script_is_served_by_no_rule_but_refused_by_a_wide_deny(
    capsys, patient, monkeypatch
):
    """A relative script whose cwd could not be read names no program: a rule for any script
    of its interpreter does not let it in, but a deny for any script keeps it out."""
    import dataclasses

    import httpx

    from aiwallet.engine.peer import program_subject

    real = patient.engine.consent.peers.lookup

    async def unresolved(transport):
        info = await real(transport)
        assert info is not None
        return dataclasses.replace(info, script="a.py")

    monkeypatch.setattr(patient.engine.consent.peers, "lookup", unresolved)
    me = psutil.Process()
    owner = f"uid:{os.getuid()}"
    wide = program_subject(me.exe(), owner, "*")
    patient.app("any-python", budget="1/day")
    [app] = patient.wallet.apps.list()
    patient.wallet.consent_rules.add("program", wide, "allow", app_id=app.id)
    with httpx.Client(timeout=30) as client:
        pending_call = ThreadCall(client, patient.url)
        req = one_prompt(capsys, patient, "the unresolved script's prompt")
        assert req["process"]["script"] == "a.py" and req["process_label"].startswith("a.py (")
        cli(capsys, patient, "consent", "deny", req["id"])
        assert pending_call.result()["error"]["code"] == "consent_denied"
        patient.wallet.consent_rules.add("program", wide, "deny")
        refused = client.post(patient.url + "/v1/chat/completions", json=MSGS_BODY)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "consent_denied"
    assert patient.fake.served == []


class ThreadCall:
    """One keyless chat completion from this process, on a thread (it is held for consent)."""

    def __init__(self, client, url: str) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(1)
        self._future = self._pool.submit(
            lambda: client.post(url + "/v1/chat/completions", json=MSGS_BODY).json()
        )

    def result(self) -> dict:
        try:
            return self._future.result(60)
        finally:
            self._pool.shutdown()
