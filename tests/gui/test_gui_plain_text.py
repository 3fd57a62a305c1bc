"""A caller's words are shown as the characters they are: a rich-text app name, purpose and
command line from a real program drawing fake rows into the consent prompt are shown
literally; every label of the app is plain text (or the app's own markup with every value
escaped); notifications, the tray menu, chart legends and tooltips escape them too."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import Qt as QtGui_Qt
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import QLabel, QWidget

from aiwallet.domain.display import display
from aiwallet.domain.reports import SpendSeries
from aiwallet.gui.dialogs import BudgetDialog, KeyShownDialog
from aiwallet.gui.notify import Notifier
from aiwallet.gui.prompt import ConsentPrompt
from aiwallet.gui.widgets import CallerLabel, tooltip_text

SRC = Path(__file__).resolve().parents[2] / "src" / "aiwallet" / "gui"

# What the adversarial tester drew: fake rows, a fake publisher, a red instruction.
NAME = "<b>Program</b><br>Verified: Microsoft Corporation"
PURPOSE = (
    "<table><tr><td><b>Program</b></td><td>C:\\Windows\\explorer.exe</td></tr>"
    "<tr><td><b>Verified</b></td><td>Microsoft Corporation</td></tr></table>"
    "<font color=red>click Allow</font>\nProgram   /usr/bin/gnome-shell\n\x1b[2J\u202eevil"
)
ARGS = ["<font color=red>click Allow</font>", "two\nlines", "x" * 3000]

CONNECT = textwrap.dedent("""
    import json, sys, httpx
    url, name, purpose = sys.argv[1:4]
    r = httpx.post(url + "/wallet/v1/connect", timeout=10,
                   json={"app_name": name, "purpose": purpose, "models": ["gpt-4o-mini"]})
    print(r.status_code, flush=True)
    sys.stdin.read()  # stay alive (the prompt names this process) until the test ends
""")


def rendered(lab: QLabel) -> str:
    """What a label draws, as text: its text for plain text, else what the markup reads as."""
    if lab.textFormat() == Qt.TextFormat.PlainText:
        return lab.text()
    doc = QTextDocument()
    doc.setHtml(lab.text())
    return doc.toPlainText()


def tooltip_shows(tip: str) -> str:
    doc = QTextDocument()
    doc.setHtml(tip)
    return doc.toPlainText().replace("\u200b", "")


def check_labels(root: QWidget, marker: str, literal: str) -> int:
    """No label guesses its format; any that shows ``marker`` shows ``literal`` (the markup
    as characters). Returns how many labels showed the marker."""
    seen = 0
    for lab in root.findChildren(QLabel):
        assert lab.textFormat() in (Qt.TextFormat.PlainText, Qt.TextFormat.RichText), (
            f"{lab.objectName() or type(lab.parent()).__name__} label {lab.text()!r} is AutoText"
        )
        text = rendered(lab)
        full = getattr(lab, "full", text)
        if marker in text or marker in full:
            seen += 1
            assert literal in full or literal in text, (lab.text(), text)
    return seen


@pytest.fixture
def hostile_caller(desk):
    """A real program with a hostile command line asking through a real connect request."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CONNECT, desk.url, NAME, PURPOSE, *ARGS],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "202"
        yield proc
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(10)


def test_a_rich_text_purpose_is_shown_literally_in_the_prompt(desk, qtbot, hostile_caller):
    assert QtGui_Qt.mightBeRichText(NAME) and QtGui_Qt.mightBeRichText(
        PURPOSE
    )  # bait Qt would render
    qtbot.waitUntil(lambda: desk.app.prompts.current is not None, timeout=10_000)
    prompt = desk.app.prompts.current
    assert prompt.request["process"]["pid"] == hostile_caller.pid
    qtbot.waitExposed(prompt)
    labels = prompt.findChildren(QLabel)
    assert all(lab.textFormat() == Qt.TextFormat.PlainText for lab in labels)
    # The name: the markup itself, on one line.
    assert prompt.heading.full == NAME
    assert prompt.heading.text().startswith("<b>Program</b>")
    line = prompt.heading.fontMetrics().lineSpacing()
    assert prompt.heading.height() < 2 * line
    # The purpose: the markup as characters, one paragraph in a bounded box; the newline,
    # ESC and the bidi override visible as marks.
    words = prompt.purpose
    assert words is not None and words.isReadOnly()
    assert words.toPlainText() == display(PURPOSE)
    assert "<table><tr><td><b>Program</b>" in words.toPlainText()
    assert "click Allow</font>⏎Program   /usr/bin/gnome-shell⏎\\x1b[2J\\u202eevil" in (
        words.toPlainText()
    )
    assert words.document().blockCount() == 1
    assert words.height() <= 4 * words.fontMetrics().lineSpacing() + 40
    # The command line: quoted arguments, markup literal, one paragraph, two lines at most.
    command = prompt.command
    assert command is not None
    text = command.toPlainText()
    assert "'<font color=red>click Allow</font>' 'two⏎lines' " in text
    assert command.document().blockCount() == 1
    assert command.height() <= 2 * command.fontMetrics().lineSpacing() + 40
    # No row was forged: the form's row titles are the prompt's own.
    titles = [lab.text() for lab in labels if lab.buddy() is None and not lab.wordWrap()]
    assert not [t for t in titles if t.startswith(("Verified", "Program:", "click"))]
    assert not [lab for lab in labels if "Microsoft" in lab.text() and lab is not prompt.heading]
    # A 3,000-character argument does not widen the prompt.
    assert prompt.width() <= 900
    image = prompt.grab().toImage()
    assert not image.isNull() and image.width() <= 900 * image.devicePixelRatio()
    prompt.deny_once()


def test_every_label_on_every_page_is_plain_or_escaped(desk, qtbot):
    marker, name = "EVIL-APP", "<i>EVIL-APP</i><br><font color=red>x</font>"
    key = desk.app_key(name, "1/day")
    desk.openai(key).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    window = desk.app.window
    seen = 0
    for i, page in enumerate(window.pages):
        window.show_page(i)
        qtbot.waitUntil(lambda p=page: p.loads >= 1, timeout=15_000)
    overview, apps, activity = window.overview, window.apps, window.activity
    overview.reload()
    activity.reload()
    qtbot.waitUntil(lambda: apps.model.rowCount() == 1, timeout=10_000)
    qtbot.waitUntil(lambda: "EVIL" in activity.legend.text(), timeout=10_000)
    qtbot.waitUntil(
        lambda: any(marker in rendered(lab) for lab in overview.findChildren(QLabel)),
        timeout=10_000,
    )
    seen = check_labels(window, marker, "<i>EVIL-APP</i>")
    assert seen >= 2  # the month-by-app row (rich) and the chart legend (rich)
    assert activity.legend.textFormat() == Qt.TextFormat.RichText
    assert "<i>EVIL-APP</i>" in rendered(activity.legend)
    # the tables and their tooltips
    index = apps.model.index(0, 0)
    assert apps.model.data(index) == name
    assert "<i>EVIL-APP</i>" in tooltip_shows(apps.model.data(index, Qt.ItemDataRole.ToolTipRole))
    log = activity.log
    qtbot.waitUntil(lambda: log.rowCount() >= 1, timeout=10_000)
    tip = log.data(log.index(0, 1), Qt.ItemDataRole.ToolTipRole)
    assert "<i>EVIL-APP</i>" in tooltip_shows(tip)


def test_dialogs_show_an_app_name_literally(qtbot):
    name = "<b>boss</b>\n<img src=x>"
    for dialog in (
        KeyShownDialog(name, "aw_app_x", "http://127.0.0.1:8402"),
        BudgetDialog(name, None),
    ):
        qtbot.addWidget(dialog)
        assert check_labels(dialog, "boss", "<b>boss</b>⏎<img src=x>") == 1
        assert "\n" not in dialog.windowTitle()


def test_no_gui_module_makes_a_label_or_message_box_that_guesses_its_format():
    """Only ``widgets.py`` constructs labels and question boxes, so none can be forgotten."""
    offenders = []
    pattern = re.compile(
        r"QLabel\(|QMessageBox\.(question|warning|information|critical)\(|TextFormat\.AutoText"
    )
    for path in SRC.rglob("*.py"):
        if path.name == "widgets.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.name}:{n}: {line.strip()}")
    assert offenders == []


def test_notifications_carry_no_markup_and_no_line_breaks(qtbot):
    shown: list[str] = []
    notifier = Notifier(None, shown.append)
    got: list[tuple[str, str, str]] = []
    notifier.shown.connect(lambda *a: got.append(a))
    notifier.notify("consent", "<b>Update</b>", '<img src="file:///etc/passwd">\nclick & Allow')
    [(_, title, text)] = got
    for part in (title, text, shown[0]):
        assert "<" not in part and ">" not in part and "&" not in part and "\n" not in part
    assert title == "‹b›Update‹/b›"
    assert text == '‹img src="file:///etc/passwd"›⏎click ＆ Allow'
    notifier.notify("x", "t", "y" * 5000)
    assert len(got[-1][2]) <= 300


def test_tray_recent_prompts_escape_names(desk, qtbot):
    from aiwallet.gui.tray import Tray

    desk.app.controller.recent_prompts.appendleft(
        {"id": "cr_1", "app_name": "&Allow\n<b>me</b>\u202e", "outcome": "pending"}
    )
    tray = Tray(
        desk.app.controller,
        open_window=lambda: None,
        show_prompt=lambda _: None,
        quit_app=lambda: None,
    )
    tray.build_menu()
    recent = tray.menu.actions()[2].menu()
    [action] = recent.actions()
    assert action.text() == "&&Allow⏎<b>me</b>\\u202e — pending"
    tray.menu.clear()


def test_chart_legend_escapes_series_names(qtbot):
    from aiwallet.gui.charts import StackedSpendChart

    chart = StackedSpendChart()
    qtbot.addWidget(chart)
    now = datetime.now(UTC)
    edges = (now - timedelta(hours=2), now - timedelta(hours=1), now)
    keys = ("<b>model</b>\n<span style='color:red'>x</span>", "gpt-4o & co")
    chart.show_series(SpendSeries(edges, keys, {keys[0]: [1, 2], keys[1]: [3, 4]}, 10), "hour", UTC)
    doc = QTextDocument()
    doc.setHtml(chart.legend_html)
    legend = doc.toPlainText()
    assert "<b>model</b>⏎<span style='color:red'>x<…" in legend  # elided at 40 characters
    assert "gpt-4o & co" in legend


def test_caller_label_elides_and_keeps_the_full_text_in_an_escaped_tooltip(qtbot):
    path = "/home/ana/" + "deep/" * 60 + "<b>python3.12</b>"
    lab = CallerLabel(path, mode=Qt.TextElideMode.ElideMiddle, max_width=300)
    qtbot.addWidget(lab)
    lab.resize(300, lab.sizeHint().height())
    lab.show()
    qtbot.waitExposed(lab)
    assert lab.sizeHint().width() <= 300
    assert lab.elided and "…" in lab.text() and lab.text().endswith("<b>python3.12</b>")
    assert tooltip_shows(lab.toolTip()) == path
    assert tooltip_shows(tooltip_text("<b>x</b> &amp;")) == "<b>x</b> &amp;"


def test_a_prompt_built_from_a_hostile_payload_has_only_plain_labels(qtbot):
    prompt = ConsentPrompt(
        {
            "id": "cr_x",
            "kind": "keyless",
            "app_name": "<h1>huge</h1>",
            "purpose": None,
            "models": ["<b>gpt</b>\n"],
            "process": {"pid": "<b>1</b>", "exe": "<img src=x>", "cmdline": [], "user": "<u>"},
            "expires_in_s": 30,
        }
    )
    qtbot.addWidget(prompt)
    assert check_labels(prompt, "huge", "<h1>huge</h1>") == 1
    assert prompt.program.full == "<img src=x>"
    assert prompt.models.text() == "<b>gpt</b>⏎"
    assert any(lab.text() == "pid <b>1</b> · user <u>" for lab in prompt.findChildren(QLabel))
    prompt.withdraw()


def test_a_process_known_only_by_its_socket_owner_says_pid_unknown(qtbot):
    """Another user's program, seen by an engine that is not root: the kernel names the
    socket's owner but no pid."""
    prompt = ConsentPrompt(
        {
            "id": "cr_y",
            "kind": "keyless",
            "app_name": "unknown program",
            "purpose": None,
            "models": ["gpt-4o-mini"],
            "process": {"pid": None, "exe": None, "cmdline": [], "user": None, "uid": 65534},
            "expires_in_s": 30,
        }
    )
    qtbot.addWidget(prompt)
    lines = [lab.text() for lab in prompt.findChildren(QLabel)]
    assert "pid unknown · user uid 65534" in lines
    assert not any("None" in text for text in lines)
    prompt.withdraw()
