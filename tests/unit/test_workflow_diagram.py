"""The state diagram in docs/architecture.md is generated from pipeline.asl.json and kept fresh."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from clipline.generated_docs import MarkerError, replace_between
from clipline.workflow.diagram import (
    BEGIN_MARKER,
    END_MARKER,
    load_definition,
    main,
    markdown_block,
    render_mermaid,
)

ARCHITECTURE = Path(__file__).parents[2] / "docs" / "architecture.md"
REGENERATE = "python -m clipline.workflow.diagram docs/architecture.md"

_EDGE = re.compile(r"^\s*(\S+) --> (\S+)(?: : (.*))?$")
_DECLARATION = re.compile(r'^\s*state "([^"]*)" as (\S+)$')
_DESCRIPTION = re.compile(r"^\s*(\S+) : (.*)$")
_COMPOSITE = re.compile(r"^\s*state (\S+) \{$")
_NOTE = re.compile(r"^\s*note right of (\S+)$")
_SAFE_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_UNSAFE_IN_LABEL = re.compile(r'[:;{}$#"]|--')

# A small definition with one of each kind of state the diagram shows, and the text it must give.
SMALL_ASL = {
    "StartAt": "Fetch",
    "TimeoutSeconds": "${JobTimeoutSeconds}",
    "States": {
        "Fetch": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "${FetchFunctionArn}", "Payload": {"jobId.$": "$.jobId"}},
            "TimeoutSeconds": "${FetchTimeoutSeconds}",
            "HeartbeatSeconds": 20,
            "Retry": [
                {"ErrorEquals": ["Lambda.ServiceException", "Lambda.TooManyRequestsException"], "MaxAttempts": 3},
                {"ErrorEquals": ["SourceUnreachableError"], "MaxAttempts": 2},
            ],
            "Catch": [
                {"ErrorEquals": ["SourceGoneError", "States.Timeout"], "Next": "Gone"},
                {"ErrorEquals": ["States.ALL"], "Next": "Failed"},
            ],
            "Next": "Route",
        },
        "Route": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.options.kind", "StringEquals": "a:b", "Next": "Notify user"},
                {"Variable": "$.options.fast", "BooleanEquals": False, "Next": "Pause"},
            ],
            "Default": "Done",
        },
        "Pause": {"Type": "Wait", "Seconds": 5, "Next": "Done"},
        "Notify user": {"Type": "Pass", "Result": {"Error": "Notified"}, "ResultPath": "$.note", "End": True},
        "Gone": {"Type": "Fail", "Error": "SourceGoneError"},
        "Failed": {"Type": "Fail", "ErrorPath": "$.failure.Error"},
        "Done": {"Type": "Succeed"},
    },
}
SMALL_DIAGRAM = """\
stateDiagram-v2
    Fetch : lambda invoke FetchFunctionArn
    Fetch : timeout FetchTimeoutSeconds, heartbeat 20 s
    Fetch : retries Lambda service errors ×3
    Fetch : retries SourceUnreachableError ×2
    Route : Choice
    Pause : Wait 5 s
    state "Notify user" as state_Notify_user
    state_Notify_user : Pass
    state_Notify_user : sets note.Error = 'Notified'
    Gone : Fail with SourceGoneError
    Failed : Fail with the error in failure.Error
    Done : Succeed
    [*] --> Fetch : execution timeout JobTimeoutSeconds
    Fetch --> Route
    Fetch --> Gone : catch SourceGoneError, States.Timeout
    Fetch --> Failed : catch any error
    Route --> state_Notify_user : options.kind == 'a b'
    Route --> Pause : options.fast == false
    Route --> Done : default
    Pause --> Done
    state_Notify_user --> [*]
    Gone --> [*]
    Failed --> [*]
    Done --> [*]
"""

# Names and values full of what Mermaid reads as syntax, and a Parallel state with branches.
HOSTILE_ASL = {
    "StartAt": "Start: {here};",
    "States": {
        "Start: {here};": {"Type": "Pass", "Result": {"k": 'a;b{c}$d#e"f'}, "Next": "end"},
        "end": {
            "Type": "Choice",
            "Choices": [
                {
                    "And": [
                        {"Variable": "$.a", "StringEquals": "x:y;z{}$#"},
                        {"Not": {"Variable": "$.n", "NumericGreaterThan": 3}},
                    ],
                    "Next": "Both--ways",
                }
            ],
            "Default": "state",
        },
        "Both--ways": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "left: one", "States": {"left: one": {"Type": "Succeed"}}},
                {
                    "StartAt": "right",
                    "States": {"right": {"Type": "Task", "Resource": "${Right$Arn}", "TimeoutSeconds": 9, "End": True}},
                },
            ],
            "Catch": [{"ErrorEquals": ["Oops:Error"], "Next": "state"}],
            "Next": "state",
        },
        "state": {"Type": "Succeed"},
    },
}


def between_markers(text: str) -> str:
    return text.split(BEGIN_MARKER, 1)[1].split(END_MARKER, 1)[0]


def names_by_id(diagram: str) -> dict[str, str]:
    """Mermaid id -> state name: the declared label where the id differs from the name."""
    return {match.group(2): match.group(1) for match in map(_DECLARATION.match, diagram.splitlines()) if match}


def rendered_edges(diagram: str) -> list[tuple[str, str, str | None]]:
    names = names_by_id(diagram)
    edges = []
    for line in diagram.splitlines():
        match = _EDGE.match(line)
        if match:
            source, target, label = match.groups()
            edges.append((names.get(source, source), names.get(target, target), label))
    return edges


def descriptions(diagram: str) -> dict[str, list[str]]:
    """State name -> its description lines."""
    names = names_by_id(diagram)
    found: dict[str, list[str]] = {}
    for line in diagram.splitlines():
        match = _DESCRIPTION.match(line)
        if match and not _EDGE.match(line):
            found.setdefault(names.get(match.group(1), match.group(1)), []).append(match.group(2))
    return found


def edges_of(scope: dict) -> list[tuple[str, str]]:
    """Every transition the definition allows, walked from the ASL itself: start, Next, Choice, Default, Catch, ends."""
    edges = [("[*]", scope["StartAt"])]
    for name, state in scope["States"].items():
        targets = [
            state.get("Next"),
            *(rule["Next"] for rule in state.get("Choices", [])),
            state.get("Default"),
            *(catcher["Next"] for catcher in state.get("Catch", [])),
        ]
        edges += [(name, target) for target in targets if target]
        if state.get("End") or state["Type"] in ("Succeed", "Fail"):
            edges.append((name, "[*]"))
    return edges


def test_the_committed_diagram_is_the_generated_one():
    # Given the definition as it is now
    expected = markdown_block(render_mermaid(load_definition()))
    # Then docs/architecture.md carries exactly its diagram
    committed = between_markers(ARCHITECTURE.read_text(encoding="utf-8"))
    assert committed == f"\n{expected}", (
        f"the state diagram in docs/architecture.md is stale; regenerate it with `{REGENERATE}`"
    )


def test_placeholders_are_kept_by_name():
    definition = load_definition()
    assert definition["TimeoutSeconds"] == "${JobTimeoutSeconds}"
    assert definition["States"]["ProbeSource"]["Parameters"]["FunctionName"] == "${ProbeSourceFunctionArn}"
    diagram = render_mermaid(definition)
    assert "    [*] --> ProbeSource : execution timeout JobTimeoutSeconds" in diagram.splitlines()
    assert "    ProbeSource : timeout ProbeTimeoutSeconds" in diagram.splitlines()


def test_every_transition_of_the_pipeline_is_an_edge_and_nothing_else_is():
    # Given the pipeline and its diagram
    definition = load_definition()
    diagram = render_mermaid(definition)
    # Then the diagram's edges are exactly the definition's transitions, each once
    drawn = sorted((source, target) for source, target, _ in rendered_edges(diagram))
    assert drawn == sorted(edges_of(definition))


def test_every_state_of_the_pipeline_is_shown_with_its_limits_and_retries():
    definition = load_definition()
    shown = descriptions(render_mermaid(definition))
    assert set(shown) == set(definition["States"])
    for name, state in definition["States"].items():
        lines = shown[name]
        if state["Type"] == "Choice":
            assert lines == ["Choice"]
        for field, word in (("TimeoutSeconds", "timeout"), ("HeartbeatSeconds", "heartbeat")):
            if field in state:
                value = str(state[field]).removeprefix("${").removesuffix("}")
                assert any(f"{word} {value}" in line for line in lines), (name, field, lines)
        for retrier in state.get("Retry", []):
            # Our own errors are named one by one; only AWS service errors are grouped.
            ours = [error for error in retrier["ErrorEquals"] if "." not in error]
            assert any(
                line.startswith("retries ")
                and line.endswith(f"×{retrier['MaxAttempts']}")
                and all(error in line for error in ours)
                for line in lines
            ), (name, retrier, lines)


def test_choices_are_labelled_with_their_condition_and_catches_with_their_errors():
    definition = load_definition()
    labels = {(source, target): label for source, target, label in rendered_edges(render_mermaid(definition))}
    assert labels[("WantsTranscript", "Transcribe")] == "options.transcribe == true"
    assert labels[("WantsTranscript", "WantsBurnIn")] == "default"
    assert labels[("WantsBurnIn", "BurnIn")] == "options.burnSubtitles == true"
    assert labels[("WantsBurnIn", "FinalizeJob")] == "default"
    for name, state in definition["States"].items():
        for catcher in state.get("Catch", []):
            label = labels[(name, catcher["Next"])]
            assert label.startswith("catch ")
            for error in catcher["ErrorEquals"]:
                assert ("any error" if error == "States.ALL" else error) in label
    assert labels[("Transcribe", "TranscriptionTimedOut")] == "catch States.HeartbeatTimeout, States.Timeout"


def test_a_small_definition_renders_exactly():
    assert render_mermaid(SMALL_ASL) == SMALL_DIAGRAM


def test_rendering_does_not_depend_on_hash_order():
    # Sets and dicts of strings iterate in a per-process order: two processes with other seeds must agree.
    printed = [
        subprocess.run(
            [sys.executable, "-m", "clipline.workflow.diagram"], capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": seed}, timeout=60,
        ).stdout
        for seed in ("1", "2")
    ]  # fmt: skip
    assert printed[0] == printed[1] == render_mermaid(load_definition())


@pytest.mark.parametrize("definition", [SMALL_ASL, HOSTILE_ASL, None], ids=["small", "hostile", "pipeline"])
def test_ids_are_identifiers_and_labels_hold_nothing_mermaid_reads_as_syntax(definition):
    diagram = render_mermaid(definition or load_definition())
    lines = diagram.splitlines()
    assert lines[0] == "stateDiagram-v2"
    in_note = False
    for line in lines[1:]:
        stripped = line.strip()
        if in_note:
            in_note = stripped != "end note"
            assert stripped == "end note" or not _UNSAFE_IN_LABEL.search(stripped), line
            continue
        if stripped in ("}", "--"):
            continue
        if match := _NOTE.match(line):
            assert _SAFE_ID.match(match.group(1)), line
            in_note = True
        elif match := _DECLARATION.match(line):
            label, state_id = match.groups()
            assert _SAFE_ID.match(state_id) and not _UNSAFE_IN_LABEL.search(label), line
        elif match := _COMPOSITE.match(line):
            assert _SAFE_ID.match(match.group(1)), line
        elif match := _EDGE.match(line):
            source, target, label = match.groups()
            assert all(end == "[*]" or _SAFE_ID.match(end) for end in (source, target)), line
            assert label is None or not _UNSAFE_IN_LABEL.search(label), line
        elif match := _DESCRIPTION.match(line):
            state_id, text = match.groups()
            assert _SAFE_ID.match(state_id) and not _UNSAFE_IN_LABEL.search(text), line
        else:
            pytest.fail(f"a line of no known shape: {line!r}")
    assert not in_note


def test_hostile_names_keep_their_edges():
    drawn = sorted((source, target) for source, target, _ in rendered_edges(render_mermaid(HOSTILE_ASL)))
    # Names are shown with Mermaid's syntax characters replaced; map them the same way.
    expected = edges_of(HOSTILE_ASL)
    for branch in HOSTILE_ASL["States"]["Both--ways"]["Branches"]:
        expected += edges_of(branch)
    shown = {"Start: {here};": "Start (here),", "Both--ways": "Both-ways", "left: one": "left one"}
    assert drawn == sorted((shown.get(source, source), shown.get(target, target)) for source, target in expected)


def test_rewriting_keeps_everything_outside_the_markers_byte_for_byte(tmp_path):
    # Given a file with CRLF line endings, non-ASCII text, a stale diagram and no final newline
    head = "# Título\r\n\r\nbefore, with trailing spaces   \r\n" + BEGIN_MARKER
    tail = END_MARKER + "\r\nafter ✓\r\n\tlast line"
    document = tmp_path / "architecture.md"
    document.write_bytes((head + "\r\nold diagram\r\n" + tail).encode("utf-8"))
    # When it is rewritten
    assert main([str(document)]) == 0
    # Then only the text between the markers changed, to the generated block
    written = document.read_bytes()
    assert written.startswith(head.encode("utf-8"))
    assert written.endswith(tail.encode("utf-8"))
    # (the begin marker's line keeps its own line ending)
    assert between_markers(written.decode("utf-8")) == "\r\n" + markdown_block(render_mermaid(load_definition()))
    # And a second run changes nothing, and --check finds it fresh
    assert main([str(document)]) == 0
    assert document.read_bytes() == written
    assert main([str(document), "--check"]) == 0


def test_check_fails_on_a_stale_copy_and_says_how_to_regenerate(tmp_path):
    # Given a copy of the architecture page whose diagram lost an edge
    text = ARCHITECTURE.read_text(encoding="utf-8")
    edge = "    FailJob --> JobFailed\n"
    assert edge in between_markers(text)
    stale = tmp_path / "architecture.md"
    stale.write_text(text.replace(edge, ""), encoding="utf-8")
    before = stale.read_bytes()
    # When the module checks it, from another directory
    result = subprocess.run(
        [sys.executable, "-m", "clipline.workflow.diagram", str(stale), "--check"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Then it fails, says how to regenerate, and leaves the file alone
    assert result.returncode == 1
    assert f"python -m clipline.workflow.diagram {stale}" in result.stderr
    assert "regenerate" in result.stderr
    assert stale.read_bytes() == before


def test_a_file_without_markers_is_refused(tmp_path, capsys):
    document = tmp_path / "notes.md"
    document.write_text("no markers here\n", encoding="utf-8")
    assert main([str(document), "--check"]) == 2
    assert BEGIN_MARKER in capsys.readouterr().err
    assert main([str(document)]) == 2
    assert document.read_text(encoding="utf-8") == "no markers here\n"


@pytest.mark.parametrize(
    "text",
    [
        f"{END_MARKER}\n{BEGIN_MARKER}\n",
        f"{BEGIN_MARKER}\n{END_MARKER}\n{BEGIN_MARKER}\n{END_MARKER}\n",
        f"{BEGIN_MARKER}\n",
    ],
    ids=["reversed", "twice", "unclosed"],
)
def test_markers_must_be_one_pair_in_order(text):
    with pytest.raises(MarkerError):
        replace_between(text, BEGIN_MARKER, END_MARKER, "block\n")
