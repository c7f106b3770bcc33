"""An Ollama Modelfile whose TEMPLATE renders prompts exactly as the student's own chat template does.

Why not name a template: Ollama picks a template for an imported GGUF by comparing its Jinja chat
template with those of models it knows (edit distance under 100 characters), and falls back to
`{{ .Prompt }}`, which sends the bare text, for any other model. SmolLM2's template, for one, adds a
default system message when none is given, which no ChatML template in Ollama's map does. So the
template is derived from the student's Jinja template instead, by rendering probe conversations with
sentinel contents and reading off what each role puts before and after its content:

    [head] [default system message, only when the conversation has none]
    for each message: prefix(role) content suffix(role)
    generation prompt

That covers the templates that wrap each message on its own (ChatML, Llama 3, Gemma, Phi-3 and the
like). The result is written as a Go template in the subset Ollama executes, rendered back here with a
small evaluator of that subset (`render_go_template`, with Ollama's own preparation of the data:
`.System` joins the system messages, consecutive messages of one role are merged), and compared with
the Jinja rendering of several conversations; a template that does not survive the round trip is
refused with the reason rather than written wrong.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from trainer.errors import TrainError

_S, _U1, _A1, _U2 = "SHAKEsysZQ", "SHAKEusrZQ", "SHAKEastZQ", "SHAKEusr2ZQ"

# The conversations an exported template must render exactly as the Jinja template does.
PROBES: list[list[dict[str, str]]] = [
    [{"role": "user", "content": "hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
    [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c\nd"}],
    [{"role": "system", "content": "S"}, {"role": "user", "content": "u {{ .x }}"},
     {"role": "assistant", "content": "```python\nprint(1)\n```"}, {"role": "user", "content": "y"}],
]


@dataclass(frozen=True)
class ChatFormat:
    """What a message-wrapping chat template writes around each message."""

    head: str
    default_system: str | None  # the block written when the conversation has no system message
    prefix: dict[str, str]
    suffix: dict[str, str]
    generation_prompt: str


def _render(tokenizer, messages: list[dict[str, str]], generation_prompt: bool) -> str:
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    except Exception as err:  # a Jinja template raises whatever its author chose
        raise TrainError(f"--ollama: the student's chat template fails on a plain conversation ({err})") from None


def _split_once(text: str, sentinel: str, what: str) -> tuple[str, str]:
    if text.count(sentinel) != 1:
        raise TrainError(f"--ollama: the student's chat template does not write a {what} message's content as "
                         "it is, so it cannot be turned into an Ollama template; write TEMPLATE by hand")
    before, after = text.split(sentinel)
    return before, after


def _tail_after(longer: str, shorter: str) -> str:
    if not longer.startswith(shorter):
        raise TrainError("--ollama: the student's chat template renders earlier messages differently as a "
                         "conversation grows, so it cannot be turned into an Ollama template; write TEMPLATE by hand")
    return longer[len(shorter):]


def chat_format(tokenizer) -> ChatFormat:
    """Read the per-role wrapping off the tokenizer's Jinja chat template."""
    if not getattr(tokenizer, "chat_template", None):
        raise TrainError("--ollama needs a student with a chat template")
    u, s, a, u2 = ({"role": r, "content": c} for r, c in
                   (("user", _U1), ("system", _S), ("assistant", _A1), ("user", _U2)))
    only_user = _render(tokenizer, [u], False)
    gen = _tail_after(_render(tokenizer, [u], True), only_user)
    with_answer = _render(tokenizer, [u, a], False)
    prefix_a, suffix_a = _split_once(_tail_after(with_answer, only_user), _A1, "assistant")
    prefix_u, suffix_u = _split_once(_tail_after(_render(tokenizer, [u, a, u2], False), with_answer), _U2, "user")
    user_block = prefix_u + _U1 + suffix_u
    if not only_user.endswith(user_block):
        raise TrainError("--ollama: the student's chat template writes the first user message unlike the others; "
                         "write TEMPLATE by hand")
    head_without_system = only_user[: -len(user_block)]
    with_system = _render(tokenizer, [s, u], False)
    if not with_system.endswith(user_block):
        raise TrainError("--ollama: the student's chat template folds the system message into the user's; "
                         "write TEMPLATE by hand")
    left, suffix_s = _split_once(with_system[: -len(user_block)], _S, "system")
    if head_without_system.startswith(left) and head_without_system.endswith(suffix_s) and \
            len(head_without_system) > len(left) + len(suffix_s):
        # the template adds a default system message when there is none (SmolLM2, Qwen2.5)
        head, prefix_s, default = "", left, head_without_system
    elif left.startswith(head_without_system):
        head, prefix_s, default = head_without_system, left[len(head_without_system):], None
    else:
        raise TrainError("--ollama: the student's chat template begins a conversation in a way shake cannot "
                         "translate; write TEMPLATE by hand")
    return ChatFormat(head, default, {"system": prefix_s, "user": prefix_u, "assistant": prefix_a},
                      {"system": suffix_s, "user": suffix_u, "assistant": suffix_a}, gen)


def ollama_keeps(ch: str) -> bool:
    """Whether Ollama's Modelfile parser keeps a character of a value: it writes a rune only if
    `strconv.IsPrint(r)` (parser/parser.go `ParseFile`), tab and line breaks aside; NBSP, ZWSP, U+FEFF and
    control characters vanish, even inside a triple-quoted value. Python's `isprintable` is the same class of runes."""
    return ch.isprintable() or ch in "\t\n\r"


def as_ollama_reads(value: str) -> str:
    """A Modelfile value as Ollama's parser hands it on."""
    return "".join(ch for ch in value if ollama_keeps(ch))


_GO_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def go_quote(text: str) -> str:
    """A Go string literal of `text` that survives the Modelfile parser: every character it would drop is an
    ASCII escape (`\\u00a0`), so the parser sees only printable runes (`strconv.Quote`'s rules)."""
    out = []
    for ch in text:
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def go_unquote(literal: str) -> str:
    """The string a Go string literal written by `go_quote` (or JSON) stands for."""
    body = literal[1:-1]
    simple = {"\\": "\\", '"': '"', "n": "\n", "t": "\t", "r": "\r", "/": "/"}
    return re.sub(r"\\(U[0-9a-fA-F]{8}|u[0-9a-fA-F]{4}|.)",
                  lambda m: chr(int(m.group(1)[1:], 16)) if m.group(1)[0] in "uU" and len(m.group(1)) > 1
                  else simple[m.group(1)], body)


def _literal(text: str) -> str:
    """Go template text for a literal: as it is, or as a quoted string where it would read as an action,
    end the Modelfile's triple-quoted TEMPLATE or hold a character Ollama's parser drops."""
    if not text:
        return ""
    if ("{{" in text or "}}" in text or '"""' in text or text.endswith('"')
            or not all(ollama_keeps(ch) for ch in text)):
        return "{{ " + go_quote(text) + " }}"
    return text


def go_template(fmt: ChatFormat) -> str:
    """The Go template (Ollama's `.System` / `.Messages` variables) for a chat format."""
    out = [_literal(fmt.head)]
    if fmt.default_system is not None:
        out.append("{{ if not .System }}" + _literal(fmt.default_system) + "{{ end }}")
    out.append("{{ range .Messages }}")
    for i, role in enumerate(("system", "user", "assistant")):
        out.append(("{{ if " if i == 0 else "{{ else if ") + f'eq .Role "{role}" }}}}'
                   + _literal(fmt.prefix[role]) + "{{ .Content }}" + _literal(fmt.suffix[role]))
    out.append("{{ end }}{{ end }}")
    out.append(_literal(fmt.generation_prompt))
    return "".join(out)


def modelfile(tokenizer, source: str) -> str:
    """A Modelfile for `ollama create NAME -f Modelfile`: the weights, a TEMPLATE checked to render like the
    student's chat template, and its end-of-turn markers as stop sequences."""
    fmt = chat_format(tokenizer)
    template = go_template(fmt)
    for conversation in PROBES:
        want = _render(tokenizer, conversation, True)
        got = render_go_template(as_ollama_reads(template), conversation)  # what Ollama's parser leaves of it
        if got != want:
            raise TrainError("--ollama: the Ollama template derived from the student's chat template renders "
                             f"{json.dumps(got[:80])}… where the student expects {json.dumps(want[:80])}…; "
                             "write TEMPLATE by hand")
    stops = []
    for stop in (fmt.suffix["assistant"].strip(), tokenizer.eos_token or ""):
        if stop and stop not in stops:
            stops.append(stop)
    lines = ["# ollama create my-student -f Modelfile", f"FROM {source}", f'TEMPLATE """{template}"""']
    for stop in stops:
        # Ollama's `unquote` only strips the surrounding quotes (parser.go): no escapes can be written.
        if '"' in stop or not all(ollama_keeps(ch) and ch not in "\n\r" for ch in stop):
            raise TrainError(f"--ollama: the stop sequence {json.dumps(stop)} cannot be written in a Modelfile "
                             "(Ollama's parser reads PARAMETER values without escapes); write it by hand")
    lines += [f'PARAMETER stop "{stop}"' for stop in stops]
    return "\n".join(lines) + "\n"


# -- the subset of Go's text/template that `go_template` writes, executed the way Ollama does -------------
_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


def _tokens(template: str) -> list[tuple[str, str]]:
    """('text', literal) and ('action', body) pieces, with `{{-` / `-}}` trimming applied."""
    out: list[tuple[str, str]] = []
    pos = 0
    trim_next = False
    for m in _ACTION.finditer(template):
        text = template[pos : m.start()]
        if trim_next:
            text = text.lstrip()
        if m.group(1):
            text = text.rstrip()
        out.append(("text", text))
        out.append(("action", m.group(2)))
        trim_next = bool(m.group(3))
        pos = m.end()
    tail = template[pos:]
    out.append(("text", tail.lstrip() if trim_next else tail))
    return out


def _value(expr: str, dot: dict, root: dict):
    if expr.startswith('"'):
        return go_unquote(expr)
    if expr.startswith("."):
        if expr[1:] not in dot:  # Go looks fields up on dot only (`$.X` reaches the root)
            raise ValueError(f"no field {expr} here")
        return dot[expr[1:]]
    raise ValueError(f"unsupported expression {expr!r}")


def _condition(expr: str, dot: dict, root: dict) -> bool:
    parts = re.findall(r'"(?:[^"\\]|\\.)*"|\S+', expr)
    if parts[0] == "not" and len(parts) == 2:
        return not _value(parts[1], dot, root)
    if parts[0] in ("eq", "ne") and len(parts) == 3:
        same = _value(parts[1], dot, root) == _value(parts[2], dot, root)
        return same if parts[0] == "eq" else not same
    if len(parts) == 1:
        return bool(_value(parts[0], dot, root))
    raise ValueError(f"unsupported condition {expr!r}")


def _parse(tokens: list[tuple[str, str]], i: int = 0, stop: tuple[str, ...] = ()) -> tuple[list, int]:
    """A list of nodes up to one of `stop` (`end`, `else`): text, field, if-chain and range nodes."""
    nodes: list = []
    while i < len(tokens):
        kind, body = tokens[i]
        if kind == "text":
            nodes.append(("text", body))
            i += 1
            continue
        head = body.split(None, 1)[0] if body else ""
        if head in stop or body.startswith("else"):
            return nodes, i
        if head == "if":
            branches = []
            cond = body[3:]
            while True:
                block, i = _parse(tokens, i + 1, ("end", "else"))
                branches.append((cond, block))
                end_body = tokens[i][1]
                if end_body == "end":
                    break
                cond = end_body[len("else if "):] if end_body.startswith("else if ") else None
            nodes.append(("if", branches))
            i += 1
        elif head == "range":
            block, i = _parse(tokens, i + 1, ("end",))
            nodes.append(("range", body[len("range "):].strip(), block))
            i += 1
        else:
            nodes.append(("value", body))
            i += 1
    return nodes, i


def _execute(nodes: list, dot: dict, root: dict, out: list[str]) -> None:
    for node in nodes:
        if node[0] == "text":
            out.append(node[1])
        elif node[0] == "value":
            out.append(str(_value(node[1], dot, root)))
        elif node[0] == "if":
            for cond, block in node[1]:
                if cond is None or _condition(cond, dot, root):
                    _execute(block, dot, root, out)
                    break
        elif node[0] == "range":
            for item in _value(node[1], dot, root):
                _execute(node[2], item, root, out)


def render_go_template(template: str, messages: list[dict[str, str]]) -> str:
    """Render `template` for a chat request the way Ollama prepares one (`.System`: the system messages
    joined by blank lines; `.Messages`: consecutive messages of one role merged), then add nothing:
    Ollama leaves the prompt to the template."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    collated: list[dict[str, str]] = []
    for m in messages:
        if collated and collated[-1]["Role"] == m["role"]:
            collated[-1]["Content"] += "\n\n" + m["content"]
        else:
            collated.append({"Role": m["role"], "Content": m["content"]})
    nodes, _ = _parse(_tokens(template))
    out: list[str] = []
    root = {"System": system, "Messages": collated, "Prompt": "", "Response": ""}
    _execute(nodes, root, root, out)
    return "".join(out)
