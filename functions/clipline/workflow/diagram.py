"""The pipeline as a Mermaid state diagram, generated from ``pipeline.asl.json``.

docs/architecture.md carries the diagram between two markers; this module writes
it there, and ``--check`` says whether the copy there still matches the definition::

    python -m clipline.workflow.diagram docs/architecture.md          # rewrite the diagram in place
    python -m clipline.workflow.diagram docs/architecture.md --check  # exit 1 when it is stale
    python -m clipline.workflow.diagram                                # print the diagram

Every state becomes a node whose description lines give its task, time limits
and retries; ``Next``, ``Default``, Choice rules and ``Catch`` become edges.
Placeholders are shown by name (``${ProbeTimeoutSeconds}`` as ``ProbeTimeoutSeconds``).
The output depends only on the definition, in its own order, so it can be compared.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, Iterator, Mapping, Sequence

from ..generated_docs import regenerate, replace_between
from . import TIMEOUT_SETTINGS, placeholders, render_definition

BEGIN_MARKER = "<!-- state-machine:begin -->"
END_MARKER = "<!-- state-machine:end -->"
DEFINITION_PATH = "functions/clipline/workflow/pipeline.asl.json"
COMMAND = "python -m clipline.workflow.diagram"

_PLACEHOLDER_VALUE = re.compile(r"^\$\{(\w+)\}$")
# A state name usable as a Mermaid id as it is; any other name gets a generated id.
_SAFE_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# Words of Mermaid's state diagram grammar, which an id must not be.
_RESERVED_IDS = frozenset(
    {"as", "class", "classdef", "click", "direction", "end", "left", "note", "of", "right", "state", "style"}
)
# What Mermaid's state diagram parser takes as syntax inside a label or a description.
_LABEL_REPLACEMENTS = {":": " ", ";": ",", "{": "(", "}": ")", "$": "", "#": "", '"': "'", "<": " lt ", ">": " gt "}
_LABEL_UNSAFE = re.compile("[" + re.escape("".join(_LABEL_REPLACEMENTS)) + "]")
_COMPARISONS = {
    "Equals": "==",
    "LessThan": "lt",
    "GreaterThan": "gt",
    "LessThanEquals": "le",
    "GreaterThanEquals": "ge",
    "Matches": "matches",
}
_COMPARISON = re.compile(r"^(String|Numeric|Boolean|Timestamp)(" + "|".join(_COMPARISONS) + r")(Path)?$")
_TYPE_TESTS = {
    "IsPresent": "present",
    "IsNull": "null",
    "IsBoolean": "a boolean",
    "IsNumeric": "a number",
    "IsString": "a string",
    "IsTimestamp": "a timestamp",
}
# Parameters that name what a service integration acts on, in the order they are looked for.
_TARGET_PARAMETERS = ("FunctionName", "QueueUrl", "TopicArn", "StateMachineArn", "TableName", "Bucket")
_INTEGRATION = re.compile(r"^arn:aws:states:::([\w-]+):([\w.:-]+)$")
_INDENT = "    "


def load_definition() -> dict[str, Any]:
    """pipeline.asl.json as data, with each ``${Name}`` placeholder kept as the string ``"${Name}"``.

    The numeric placeholders (TIMEOUT_SETTINGS) stand unquoted in the file, so
    they are quoted here to make it JSON; the others already sit inside strings.
    """
    substitutions = {
        name: f'"${{{name}}}"' if name in TIMEOUT_SETTINGS else f"${{{name}}}" for name in placeholders()
    }
    return json.loads(render_definition(substitutions))


def render_mermaid(definition: Mapping[str, Any]) -> str:
    """The definition as a Mermaid ``stateDiagram-v2``, one statement per line, ending in a newline.

    Raises:
        ValueError: a Choice rule this module cannot read, or an edge to a state that does not exist.
    """
    ids = _state_ids(list(_all_state_names(definition)))
    lines = ["stateDiagram-v2"]
    start_label = None
    if "TimeoutSeconds" in definition:
        start_label = f"execution timeout {_seconds(definition['TimeoutSeconds'])}"
    lines += _scope(definition, ids, _INDENT, start_label)
    return "\n".join(lines) + "\n"


def markdown_block(diagram: str) -> str:
    """What goes between the markers: a note on where it comes from, and the diagram in a mermaid fence."""
    return (
        f"<!-- generated from {DEFINITION_PATH} by {COMMAND}; edit the definition, not this -->\n"
        f"```mermaid\n{diagram}```\n"
    )


def with_fresh_diagram(text: str) -> str:
    """``text`` with the diagram between the markers drawn again from the definition.

    Raises:
        MarkerError: not exactly one begin marker line followed by one end marker line.
    """
    return replace_between(text, BEGIN_MARKER, END_MARKER, markdown_block(render_mermaid(load_definition())))


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments:
        sys.stdout.write(render_mermaid(load_definition()))
        return 0
    return regenerate(arguments, prog=COMMAND, what="the state-machine diagram", fresh=with_fresh_diagram)


def _all_state_names(scope: Mapping[str, Any]) -> Iterator[str]:
    """Every state name, nested branches included, in the definition's order (names are unique machine-wide)."""
    for name, state in scope.get("States", {}).items():
        yield name
        for branch in _branches(state):
            yield from _all_state_names(branch)


def _branches(state: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    if state.get("Type") == "Parallel":
        return list(state.get("Branches", []))
    if state.get("Type") == "Map":
        processor = state.get("ItemProcessor") or state.get("Iterator")
        return [processor] if processor else []
    return []


def _state_ids(names: list[str]) -> dict[str, str]:
    """A Mermaid id per state: the name itself when it is a safe identifier, else a generated one."""
    ids = {name: name for name in names if _SAFE_ID.match(name) and name.lower() not in _RESERVED_IDS}
    used = set(ids.values())
    for name in names:
        if name in ids:
            continue
        base = "state_" + (re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or "unnamed")
        candidate, suffix = base, 2
        while candidate in used or candidate.lower() in _RESERVED_IDS:
            candidate, suffix = f"{base}_{suffix}", suffix + 1
        ids[name] = candidate
        used.add(candidate)
    return ids


def _scope(scope: Mapping[str, Any], ids: Mapping[str, str], indent: str, start_label: str | None = None) -> list[str]:
    """The lines of one state list (the machine, or one branch): its states, then its edges."""
    states: Mapping[str, Any] = scope.get("States", {})
    lines: list[str] = []
    for name, state in states.items():
        state_id = ids[name]
        if state_id != name:
            lines.append(f'{indent}state "{_label(name)}" as {state_id}')
        branches = _branches(state)
        if branches:
            lines.append(f"{indent}state {state_id} {{")
            for number, branch in enumerate(branches):
                if number:
                    lines.append(f"{indent}{_INDENT}--")
                lines += _scope(branch, ids, indent + _INDENT)
            lines.append(f"{indent}}}")
            lines.append(f"{indent}note right of {state_id}")
            lines += [f"{indent}{_INDENT}{_label(line)}" for line in _description(state)]
            lines.append(f"{indent}end note")
        else:
            lines += [f"{indent}{state_id} : {_label(line)}" for line in _description(state)]
    start = _target(ids, states, scope["StartAt"])
    lines.append(f"{indent}[*] --> {start}" + (f" : {_label(start_label)}" if start_label else ""))
    for name, state in states.items():
        lines += [f"{indent}{edge}" for edge in _edges(ids[name], state, ids, states)]
    return lines


def _target(ids: Mapping[str, str], states: Mapping[str, Any], name: str) -> str:
    if name not in states:
        raise ValueError(f"an edge goes to {name!r}, which is not a state of its scope")
    return ids[name]


def _edges(state_id: str, state: Mapping[str, Any], ids: Mapping[str, str], states: Mapping[str, Any]) -> list[str]:
    edges = []
    if state["Type"] == "Choice":
        for rule in state.get("Choices", []):
            edges.append(f"{state_id} --> {_target(ids, states, rule['Next'])} : {_label(_condition(rule))}")
        if "Default" in state:
            edges.append(f"{state_id} --> {_target(ids, states, state['Default'])} : default")
    elif "Next" in state:
        edges.append(f"{state_id} --> {_target(ids, states, state['Next'])}")
    if state.get("End") or state["Type"] in ("Succeed", "Fail"):
        edges.append(f"{state_id} --> [*]")
    for catcher in state.get("Catch", []):
        target = _target(ids, states, catcher["Next"])
        edges.append(f"{state_id} --> {target} : {_label('catch ' + _errors(catcher['ErrorEquals']))}")
    return edges


def _description(state: Mapping[str, Any]) -> list[str]:
    """The lines shown in a state's box: what it does, its time limits, its retries."""
    kind = state["Type"]
    if kind == "Task":
        lines = [_task(state)]
    elif kind == "Pass":
        lines = ["Pass"] + _pass_result(state)
    elif kind == "Wait":
        lines = [_wait(state)]
    elif kind == "Fail":
        lines = [_fail(state)]
    else:
        lines = [kind]
    limits = []
    for field, word in (("TimeoutSeconds", "timeout"), ("HeartbeatSeconds", "heartbeat")):
        if field in state:
            limits.append(f"{word} {_seconds(state[field])}")
        elif f"{field}Path" in state:
            limits.append(f"{word} from {_path(state[field + 'Path'])}")
    if limits:
        lines.append(", ".join(limits))
    for retrier in state.get("Retry", []):
        attempts = retrier.get("MaxAttempts", 3)
        errors = _errors(retrier["ErrorEquals"])
        lines.append(f"retries {errors} ×{attempts}" if attempts else f"never retries {errors}")
    return lines


def _task(state: Mapping[str, Any]) -> str:
    resource = str(state["Resource"])
    integration = _INTEGRATION.match(resource)
    if integration is None:
        # A Lambda function or activity ARN, or a placeholder for one.
        return f"Task {_value(resource).rsplit(':', 1)[-1]}"
    service, action = integration.groups()
    parameters = state.get("Parameters") or {}
    target = next((parameters[key] for key in _TARGET_PARAMETERS if isinstance(parameters.get(key), str)), None)
    return f"{service} {action}" + (f" {_value(target)}" if target else "")


def _pass_result(state: Mapping[str, Any]) -> list[str]:
    result = state.get("Result")
    # ResultPath null discards the result: nothing is set.
    if not isinstance(result, Mapping) or state.get("ResultPath", "$") is None:
        return []
    where = _path(state.get("ResultPath", "$"))
    prefix = "" if where == "input" else f"{where}."
    return [
        f"sets {prefix}{key} = {_literal(value)}"
        for key, value in result.items()
        if isinstance(value, (str, int, float, bool)) and len(str(value)) <= 40
    ]


def _wait(state: Mapping[str, Any]) -> str:
    if "Seconds" in state:
        return f"Wait {_seconds(state['Seconds'])}"
    if "Timestamp" in state:
        return f"Wait until {state['Timestamp']}"
    path = state.get("SecondsPath") or state.get("TimestampPath")
    return f"Wait for {_path(path)}" if path else "Wait"


def _fail(state: Mapping[str, Any]) -> str:
    if "Error" in state:
        return f"Fail with {state['Error']}"
    if "ErrorPath" in state:
        return f"Fail with the error in {_path(state['ErrorPath'])}"
    return "Fail"


def _condition(rule: Mapping[str, Any]) -> str:
    """A Choice rule in short readable form, such as ``options.transcribe == true``.

    Raises:
        ValueError: a rule of a kind this module does not know.
    """
    for combinator in ("And", "Or"):
        if combinator in rule:
            return f" {combinator.lower()} ".join(_grouped(part) for part in rule[combinator])
    if "Not" in rule:
        return f"not {_grouped(rule['Not'])}"
    if "Condition" in rule:
        return str(rule["Condition"])
    variable = _path(rule["Variable"])
    for key, operand in rule.items():
        if key in _TYPE_TESTS:
            return f"{variable} is {'' if operand else 'not '}{_TYPE_TESTS[key]}"
        comparison = _COMPARISON.match(key)
        if comparison:
            shown = _path(operand) if comparison.group(3) else _literal(operand)
            return f"{variable} {_COMPARISONS[comparison.group(2)]} {shown}"
    raise ValueError(f"a Choice rule of an unknown kind: {sorted(rule)}")


def _grouped(rule: Mapping[str, Any]) -> str:
    text = _condition(rule)
    return f"({text})" if "And" in rule or "Or" in rule else text


def _errors(names: Sequence[str]) -> str:
    """Error names for a label: ``States.ALL`` as "any error", and several of one AWS service as one entry."""
    shown: list[str] = []
    namespaces = [name.split(".", 1)[0] for name in names if "." in name and not name.startswith("States.")]
    for name in names:
        namespace = name.split(".", 1)[0] if "." in name else None
        if name == "States.ALL":
            entry = "any error"
        elif namespace and namespace != "States" and namespaces.count(namespace) > 1:
            entry = f"{namespace} service errors"
        else:
            entry = name
        if entry not in shown:
            shown.append(entry)
    return ", ".join(shown)


def _seconds(value: Any) -> str:
    placeholder = _placeholder(value)
    return placeholder if placeholder else f"{value} s"


def _value(value: Any) -> str:
    placeholder = _placeholder(value)
    return placeholder if placeholder else str(value)


def _placeholder(value: Any) -> str | None:
    match = _PLACEHOLDER_VALUE.match(value) if isinstance(value, str) else None
    return match.group(1) if match else None


def _path(path: str) -> str:
    """A JSONPath as readers write it: ``$.options.transcribe`` -> ``options.transcribe``."""
    trimmed = re.sub(r"^\$+\.?", "", str(path))
    return trimmed or "input"


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}'"
    return str(value)


def _label(text: str) -> str:
    """``text`` with what Mermaid would read as syntax replaced, on one line."""
    safe = _LABEL_UNSAFE.sub(lambda match: _LABEL_REPLACEMENTS[match.group(0)], text)
    safe = re.sub(r"-{2,}", "-", safe)
    return " ".join(safe.split())


if __name__ == "__main__":
    sys.exit(main())
