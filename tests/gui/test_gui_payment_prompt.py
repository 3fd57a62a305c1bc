"""The payment prompt as built from the engine's request (``held_request`` of kind
``payment``): what it shows (payee in full, both amounts, the network with REAL MONEY on
mainnet, resource, provider, model, who asks), that its four buttons answer what the engine
takes (``approve(duration=once|always)``, ``deny(always=...)``), that nothing is the
default and Esc, closing or the countdown's end refuse once; and the QR code drawn for an
address (its modules exactly segno's, crisp, black on white in either theme)."""

from __future__ import annotations

import pytest
import segno
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFontInfo
from PySide6.QtWidgets import QLabel, QPushButton

from aiwallet.domain.chains import DEVNET, MAINNET, network
from aiwallet.gui import texts
from aiwallet.gui.prompt import ConsentPrompt
from aiwallet.gui.qr import QUIET, QrCode, qr_modules, qr_pixmap
from aiwallet.gui.widgets import CallerLabel, CallerWords

PAYEE = "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM"


def payment_request(net=DEVNET, **held) -> dict:
    base = {
        "app": "research-agent",
        "provider": "router-x402",
        "model": "gpt-4o-mini",
        "payee": PAYEE,
        "payee_id": f"{net.caip2}:{PAYEE}",
        "network": net.caip2,
        "network_label": net.describe(),
        "real_money": net.real_money,
        "amount_usd": "0.010000000",
        "amount_atomic": "10000",
        "asset": net.usdc_mint,
        "resource": "http://127.0.0.1:9/v1/chat/completions",
        "request_id": "req_1",
    }
    base.update(held)
    return {
        "id": "cr_pay",
        "kind": "payment",
        "app_name": base["app"],
        "purpose": None,
        "models": [base["model"]],
        "budget": None,
        "lifetime_s": None,
        "process": {
            "pid": 4242,
            "exe": "/usr/bin/python3.12",
            "cmdline": ["python3", "agent.py"],
            "user": "ana",
            "script": "/home/ana/agent.py",
        },
        "expires_in_s": 60,
        "state": "pending",
        "held_request": base,
        "served_models": [],
        "served_count": 0,
    }


def _prompt(qtbot, request) -> tuple[ConsentPrompt, list]:
    prompt = ConsentPrompt(request)
    qtbot.addWidget(prompt)
    answers: list = []
    prompt.answered.connect(lambda rid, answer: answers.append((rid, answer)))
    return prompt, answers


def _texts(prompt) -> list[str]:
    out = []
    for lab in prompt.findChildren(QLabel):
        out.append(lab.full if isinstance(lab, CallerLabel) else lab.text())
    return out


def test_the_payment_prompt_shows_what_is_paid_to_whom(qtbot):
    prompt, _ = _prompt(qtbot, payment_request())
    assert prompt.windowTitle() == texts.PROMPT_PAYMENT_TITLE == "Pay an x402 router?"
    shown = _texts(prompt)
    assert prompt.heading.full == "research-agent"
    assert texts.PROMPT_PAYMENT in shown
    assert "$0.01 (0.01 USDC) for this request" in shown
    assert "Solana devnet (test money)" in shown
    assert "router-x402" in shown and "gpt-4o-mini" in shown
    assert "http://127.0.0.1:9/v1/chat/completions" in shown
    # who asks, as for the other kinds: the program, its script and its process
    assert "/usr/bin/python3.12" in shown and "/home/ana/agent.py" in shown
    assert "pid 4242 · user ana" in shown
    # the payee in full, in a plain, monospaced, read-only box
    assert prompt.payee is not None
    assert prompt.payee.toPlainText() == PAYEE
    assert prompt.payee.isReadOnly()
    assert QFontInfo(prompt.payee.font()).fixedPitch()
    assert not prompt.badge.isVisibleTo(prompt)  # the line says "test money" already
    # none of a grant's choices: one payment is paid or not
    assert not prompt.asked.isVisibleTo(prompt)
    assert not prompt.remember.isVisibleTo(prompt)
    assert not prompt.any_script.isVisibleTo(prompt)


def test_on_mainnet_it_says_real_money(qtbot):
    prompt, _ = _prompt(qtbot, payment_request(MAINNET))
    assert prompt.badge.text() == "REAL MONEY" and prompt.badge.isVisibleTo(prompt)
    assert prompt.badge.objectName() == "realMoney"
    assert "Solana mainnet (REAL MONEY)" in _texts(prompt)


def test_a_custom_rpc_url_is_shown_by_its_host_only(qtbot):
    label = "Solana devnet via https://rpc.example/key/s3cr3t?api-key=abc (test money)"
    prompt, _ = _prompt(qtbot, payment_request(network_label=label))
    assert prompt.network.text() == "Solana devnet via rpc.example (test money)"
    assert not [t for t in _texts(prompt) if "s3cr3t" in t or "api-key" in t]
    # as the engine says it (Network.describe names the host itself)
    net = network("devnet", "https://rpc.example:8899/key/s3cr3t")
    prompt, _ = _prompt(qtbot, payment_request(network_label=net.describe()))
    assert prompt.network.text() == "Solana devnet via rpc.example:8899 (test money)"


def test_the_buttons_say_what_they_do_and_none_is_the_default(qtbot):
    prompt, _ = _prompt(qtbot, payment_request())
    buttons = {b.text(): b for b in prompt.findChildren(QPushButton) if b.isVisibleTo(prompt)}
    assert set(buttons) == {
        "Don't pay",
        "Never pay this payee",
        "Pay once",
        "Always pay this payee",
    }
    assert not any(b.isDefault() or b.autoDefault() for b in buttons.values())
    assert buttons["Always pay this payee"].objectName() != "primary"


@pytest.mark.parametrize(
    ("button", "answer"),
    [
        ("Don't pay", {"action": "deny", "always": False}),
        ("Never pay this payee", {"action": "deny", "always": True}),
        ("Pay once", {"action": "pay", "always": False}),
        ("Always pay this payee", {"action": "pay", "always": True}),
    ],
)
def test_each_button_answers_once(qtbot, button, answer):
    prompt, answers = _prompt(qtbot, payment_request())
    prompt.show()
    qtbot.waitExposed(prompt)
    found = next(b for b in prompt.findChildren(QPushButton) if b.text() == button)
    qtbot.mouseClick(found, Qt.MouseButton.LeftButton)
    assert answers == [("cr_pay", answer)]
    prompt.deny_once()  # already answered: nothing more
    assert len(answers) == 1


def test_escape_closing_and_the_countdown_refuse_once(qtbot):
    prompt, answers = _prompt(qtbot, payment_request())
    prompt.show()
    qtbot.waitExposed(prompt)
    qtbot.keyClick(prompt, Qt.Key.Key_Escape)
    assert answers == [("cr_pay", {"action": "deny", "always": False})]

    prompt, answers = _prompt(qtbot, payment_request())
    prompt.show()
    prompt.close()
    assert answers == [("cr_pay", {"action": "deny", "always": False})]

    request = payment_request()
    request["expires_in_s"] = 1
    prompt, answers = _prompt(qtbot, request)
    prompt.show()
    qtbot.waitUntil(lambda: bool(answers), timeout=5_000)
    assert answers == [("cr_pay", {"action": "deny", "always": False, "timeout": True})]


def test_a_payees_and_routers_words_are_shown_as_characters(qtbot):
    hostile = "<b>Verified</b>\nPay\u202eto"
    prompt, _ = _prompt(
        qtbot,
        payment_request(payee=hostile, provider="<i>p</i>", resource="<a href=x>r</a>"),
    )
    assert prompt.payee is not None
    assert prompt.payee.toPlainText() == "<b>Verified</b>⏎Pay\\u202eto"
    assert all(lab.textFormat() == Qt.TextFormat.PlainText for lab in prompt.findChildren(QLabel))
    words = [w.toPlainText() for w in prompt.findChildren(CallerWords)]
    assert "<b>Verified</b>⏎Pay\\u202eto" in words
    assert "<i>p</i>" in _texts(prompt) and "<a href=x>r</a>" in _texts(prompt)


def test_the_qr_code_is_segnos_matrix_crisp_black_on_white(qtbot):
    code = segno.make(PAYEE, error="m", micro=False)
    modules = qr_modules(PAYEE)
    size = len(code.matrix) + 2 * QUIET
    assert len(modules) == size and all(len(row) == size for row in modules)
    # the quiet zone is white, the symbol is segno's
    assert not any(modules[y][x] for y in range(QUIET) for x in range(size))
    for y, row in enumerate(code.matrix):
        assert modules[y + QUIET][QUIET : QUIET + len(row)] == [bool(v) for v in row]
    for ratio in (1.0, 2.0):
        pixmap = qr_pixmap(PAYEE, 168, ratio)
        image = pixmap.toImage()
        module = image.width() // size
        assert image.width() == module * size and module >= 2
        assert image.width() <= 168 * ratio
        assert pixmap.devicePixelRatio() == ratio
        colours = set()
        for y in range(size):
            for x in range(size):
                # every pixel of a module is the module's colour: no blur at its edges
                for dy, dx in ((0, 0), (module - 1, module - 1), (0, module - 1)):
                    c = image.pixelColor(x * module + dx, y * module + dy)
                    expected = QColor("#000000") if modules[y][x] else QColor("#ffffff")
                    assert c == expected, (x, y, dx, dy)
                    colours.add(c.name())
        assert colours == {"#000000", "#ffffff"}
    widget = QrCode(168)
    qtbot.addWidget(widget)
    widget.set_text(PAYEE)
    assert widget.width() == widget.height() == 168
    assert not widget.image.pixmap().isNull()


def test_a_two_line_command_does_not_run_into_the_rows_below(qtbot):
    """A caller's words wrap once their box has its width; the prompt then grows, so the
    rows do not overlap."""
    request = payment_request()
    request["process"]["cmdline"] = [
        "/work/main/.venv/bin/python",
        "/tmp/aiwallet-prompt-shots-77v1b1x0/light/research_agent.py",
        "http://127.0.0.1:37797",
    ]
    prompt, _ = _prompt(qtbot, request)
    prompt.show()
    qtbot.waitExposed(prompt)
    assert prompt.command is not None
    qtbot.waitUntil(lambda: prompt.command.lines_shown() == 2, timeout=5_000)
    qtbot.waitUntil(
        lambda: prompt.command.geometry().bottom() < prompt.cost.geometry().top(), timeout=5_000
    )
    assert prompt.payee.geometry().bottom() < prompt.findChildren(CallerLabel)[-1].geometry().top()
