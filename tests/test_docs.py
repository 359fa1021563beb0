"""README.md and docs/*.md: every relative link leads to a file (and heading) that exists, and every command their
shell blocks show still parses (``--help`` exits 0)."""
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = {"bash", "sh", "shell", "console"}
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")  # [text](target "title"), images too
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # https:, mailto:, ...: not checked here

# scripts/test.sh and scripts/setup.sh take no --help (test.sh hands its arguments to pytest, setup.sh ignores them
# and installs into .venv), and lock.sh rewrites scripts/constraints.txt: none is a command whose flags can drift.
NO_HELP = {"scripts/test.sh", "scripts/setup.sh", "scripts/lock.sh"}


def split_markdown(text):
    """(prose lines, code blocks): prose outside fenced blocks; each block as (language, its lines)."""
    prose, blocks, fence, lang, body = [], [], None, "", []
    for line in text.splitlines():
        stripped = line.strip()
        if fence is None and stripped.startswith(("```", "~~~")):
            fence, lang, body = stripped[:3], stripped[3:].strip().lower(), []
        elif fence is not None and stripped.startswith(fence):
            blocks.append((lang, body))
            fence = None
        elif fence is not None:
            body.append(line)
        else:
            prose.append(line)
    return prose, blocks


def slug(heading):
    """GitHub's anchor for a heading: the text as rendered (code spans and links keep their text), lower case,
    everything but letters, digits, marks, '_', '-' and spaces dropped, spaces turned into '-'."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    keep = "".join(c for c in text if c.isalnum() or c in "_- " or unicodedata.category(c).startswith("M"))
    return keep.replace(" ", "-")


def anchors(path):
    """Every heading anchor of a markdown file; repeated headings get -1, -2, ... as on GitHub."""
    prose, _ = split_markdown(path.read_text(encoding="utf-8"))
    seen, out = {}, set()
    for line in prose:
        m = re.match(r" {0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def broken_links(path):
    """Relative links of markdown file ``path`` whose file or ``#anchor`` does not exist, as 'target: why'."""
    prose, _ = split_markdown(path.read_text(encoding="utf-8"))
    broken = []
    for line in prose:
        for target in LINK.findall(re.sub(r"``?[^`]+``?", "", line)):  # links inside code spans are not links
            if SCHEME.match(target):
                continue
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            if not dest.exists():
                broken.append(f"{target}: no file {dest}")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    return broken


def shell_commands(text):
    """The distinct commands the shell blocks of a markdown text run: 'scripts/X.sh', 'yolo-attn SUB' or
    'yolo-attn', '-m MODULE' (python -m or torchrun -m)."""
    found = []
    for lang, body in split_markdown(text)[1]:
        if lang not in SHELL:
            continue
        joined = re.sub(r"\\\n", " ", "\n".join(body))  # line continuations
        for line in joined.splitlines():
            line = re.sub(r"(^|\s)#.*", "", line)  # comments
            found += re.findall(r"(?<![\w/.-])(scripts/[\w.-]+\.sh)", line)
            found += [f"yolo-attn {sub}".strip() for sub in re.findall(r"(?<![\w/.-])yolo-attn\b(?:\s+([a-z][\w-]*))?", line)]
            found += [f"-m {module}" for module in re.findall(r"(?<![\w-])-m\s+(yolo_attn[\w.]*)", line)]
    return list(dict.fromkeys(found))


def script_module(script):
    """The module a scripts/*.sh wrapper runs (``exec .../_run.sh MODULE "$@"``)."""
    m = re.search(r'_run\.sh"?\s+([\w.]+)', (ROOT / script).read_text())
    assert m, f"{script}: no '_run.sh MODULE' line"
    return m.group(1)


def help_exit_code(command):
    """Exit status of ``command --help``. A scripts/*.sh wrapper first runs scripts/setup.sh (which would create and
    install a .venv in this checkout), so its module is run directly instead, with this interpreter. yolo-attn
    commands run in this process (``yolo_attn.cli.main.cli``), other modules in a subprocess."""
    from yolo_attn.cli.main import COMMANDS, cli

    by_module = {f"yolo_attn.cli.{module}": name for name, (module, _) in COMMANDS.items() if module}
    if command.startswith("scripts/"):
        assert (ROOT / command).is_file(), f"{command} does not exist"
        command = f"-m {script_module(command)}"
    if command.startswith("-m "):
        module = command[3:]
        if module in by_module:
            command = f"yolo-attn {by_module[module]}"
        elif module == "yolo_attn.cli.main":
            command = "yolo-attn"
        else:
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
            return subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, env=env, capture_output=True,
                                  timeout=300).returncode
    argv = command.split()[1:] + ["--help"]
    try:
        cli(argv)
    except SystemExit as e:
        return 0 if e.code is None else e.code
    return 0


def _all_commands():
    return list(dict.fromkeys(c for page in PAGES for c in shell_commands(page.read_text(encoding="utf-8"))))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_to_existing_files_and_headings(page):
    assert broken_links(page) == []


def test_every_docs_page_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert [p.name for p in PAGES[1:] if f"(docs/{p.name}" not in readme] == []


@pytest.mark.parametrize("command", [c for c in _all_commands() if c not in NO_HELP])
def test_shown_command_accepts_help(command, capsys):
    assert help_exit_code(command) == 0, f"`{command} --help` failed:\n{capsys.readouterr().err[-2000:]}"


def test_the_readme_python_example_runs():
    _, blocks = split_markdown((ROOT / "README.md").read_text(encoding="utf-8"))
    (code,) = [body for lang, body in blocks if lang == "python"]
    namespace = {}
    exec(compile("\n".join(code), "README.md", "exec"), namespace)
    assert namespace["y"].shape == (1, 256, 40, 40)
    assert "layer1.0.bn3.attn.fc1.weight" in namespace["m"].state_dict()


# The checkers themselves must be able to fail.

def test_link_checker_reports_a_missing_file_and_a_missing_heading(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## Bad input: what stops\n\n## Repeated\n\n## Repeated\n")
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n[ok](other.md) [ok](other.md#bad-input-what-stops) [ok](other.md#repeated-1)\n"
                    "[ok](#page) [web](https://example.com/x.md) `[code](nothing.md)`\n"
                    "[gone](missing.md) [bad anchor](other.md#no-such-heading)\n\n"
                    "```bash\n[in a block](also-missing.md)\n```\n")
    assert broken_links(page) == [f"missing.md: no file {tmp_path / 'missing.md'}",
                                  "other.md#no-such-heading: no heading #no-such-heading in other.md"]


def test_slug_follows_githubs_rules():
    assert slug("The ultralytics engine (YOLOv5u, YOLOv8, YOLO11)") == "the-ultralytics-engine-yolov5u-yolov8-yolo11"
    assert slug("What to expect: published figures") == "what-to-expect-published-figures"
    assert slug("Compatibility with today's stack") == "compatibility-with-todays-stack"
    assert slug("The `layers` command") == "the-layers-command"


def test_command_finder_and_a_command_that_does_not_exist():
    text = ("```bash\nscripts/train.sh --cfg a.yaml \\\n    --epochs 3   # then scripts/val.sh\n"
            "yolo-attn insert --base x.yaml\nyolo-attn --help\ntorchrun --standalone -m yolo_attn.cli.train --cfg a\n"
            "scripts/train.sh --cfg b.yaml\n```\n\n```python\nscripts/bench.sh\n```\n")
    assert shell_commands(text) == ["scripts/train.sh", "yolo-attn insert", "yolo-attn", "-m yolo_attn.cli.train"]
    with pytest.raises(AssertionError, match="does not exist"):
        help_exit_code("scripts/no-such-script.sh")
    assert help_exit_code("yolo-attn no-such-command") == 2
