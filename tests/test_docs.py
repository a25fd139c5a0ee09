"""The documentation works: README.md and docs/*.md are checked block by block.

- Every ```python block must compile, and every `transformers_kronos` name it imports or uses must exist.
- Runnable python blocks are executed, in order, one namespace per file (like a notebook), in a scratch directory
  that mirrors the repository (so `examples/data/sample_kline.csv` resolves and outputs land in the scratch dir).
  A block is *not* executed when it is marked (```` ```python no-run ```` or an `<!-- no-run -->` line right above
  it), when it needs what this machine does not have (a Hub repo id or a path that does not exist, CUDA), or when
  it uses names that only such a block defines. It is still compiled and its names are still checked.
  Blocks written as interactive sessions (`>>>`) run as doctests. Sample paths are capped at 3 (`with_fewer_paths`).
- ```bash blocks: `kronos-forecast ...` and `kronos-evaluate ...` command lines must parse with the real argument
  parser, `python SCRIPT`
  must name a script that exists, and `make TARGET` a target of the Makefile.
- Every `transformers_kronos.x.y` mentioned anywhere in the text must resolve, and relative links must point to
  files that exist.
"""

import ast
import builtins
import doctest
import importlib
import re
import shlex
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
DOC_IDS = [str(p.relative_to(REPO)) for p in DOC_FILES]

FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)$")
NO_RUN_COMMENT = re.compile(r"<!--\s*(no-run|docs-test:\s*skip)\s*-->")
QUALIFIED_NAME = re.compile(r"\btransformers_kronos(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
# a string literal that names a Hub repository or a path with folders
SLASHED = re.compile(r"^[\w.~-]+(/[\w.@%+=:,~-]*)+$")


class Block:
    def __init__(self, lang, flags, code, line, marked_no_run):
        self.lang, self.flags, self.code, self.line = lang, flags, code, line
        self.no_run = marked_no_run or "no-run" in flags or "no_run" in flags

    def __repr__(self):
        return f"{self.lang} block at line {self.line}"


def parse_blocks(text):
    """The fenced code blocks of a markdown text."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, info = match["fence"], match["info"].strip().split()
        lang, flags = (info[0].lower(), info[1:]) if info else ("", [])
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        start, body = i + 1, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][len(match["indent"]):] if lines[i].startswith(match["indent"]) else lines[i])
            i += 1
        blocks.append(Block(lang, flags, "\n".join(body) + "\n", start, bool(NO_RUN_COMMENT.search(previous))))
        i += 1
    return blocks


# A doc example runs as written, except that it draws at most 3 sample paths under test: the same calls, arguments
# and output shapes at a fraction of the CPU time (docs/forecasting.md's pipeline asks for quantiles of 30 paths while
# the 512-candle window slides every step).
MANY_PATHS = re.compile(r"\bsample_count=(\d+)")


def with_fewer_paths(source):
    return MANY_PATHS.sub(lambda match: f"sample_count={min(int(match.group(1)), 3)}", source)


def python_source(block):
    """The block's code as plain python (doctest prompts stripped)."""
    if block.code.lstrip().startswith(">>>"):
        examples = doctest.DocTestParser().get_examples(block.code)
        return "".join(example.source for example in examples)
    return block.code


def resolve(dotted):
    """Import the longest importable module prefix of `transformers_kronos.a.b.c`, then getattr the rest."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError as err:
            if err.name and not ".".join(parts[:cut]).startswith(err.name):
                raise  # a dependency of the module is missing: a real failure
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                raise AssertionError(f"`{dotted}`: {'.'.join(parts[:cut])} has no attribute {attr!r}")
            obj = getattr(obj, attr)
        return obj
    raise AssertionError(f"`{dotted}` is not importable")


def kronos_names(tree):
    """Every `transformers_kronos...` name a piece of code imports or uses by its dotted path."""
    names, aliases = set(), {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "transformers_kronos":
            for alias in node.names:
                if alias.name != "*":
                    names.add(f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "transformers_kronos":
                    names.add(alias.name)
                    aliases[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else "transformers_kronos"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            chain, inner = [], node
            while isinstance(inner, ast.Attribute):
                chain.append(inner.attr)
                inner = inner.value
            if isinstance(inner, ast.Name) and inner.id in aliases:
                names.add(".".join([aliases[inner.id], *reversed(chain)]))
    return names


def unavailable_reason(tree, scratch):
    """Why a block cannot run on this machine (a Hub id or missing path, CUDA), or None."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            value = node.value
            if SLASHED.match(value) and not value.startswith(("http://", "https://")):
                first = value.split("/")[0]
                if first in ("", "~") or not (scratch / first).exists():
                    return f"needs {value!r}, which is neither here nor downloadable"
            if value.startswith("cuda") and not torch.cuda.is_available():
                return "needs CUDA"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "push_to_hub":
                return "pushes to the Hub"
            if node.func.attr == "cuda" and not torch.cuda.is_available():
                return "needs CUDA"
    return None


def assigned_names(tree):
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name.split(".")[0]) for a in node.names)
    return names


def loaded_names(tree):
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A directory that looks like the repository (links to its top-level entries) plus an empty out/."""
    for entry in REPO.iterdir():
        if entry.name in (".git", ".venv", "out", "build", ".pytest_cache") or entry.name.endswith(".egg-info"):
            continue
        (tmp_path / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    (tmp_path / "out").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # the examples use tiny models, for which extra threads only contend (badly so on a loaded 2-core machine)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tmp_path
    torch.set_num_threads(threads)


def test_there_are_docs():
    assert (REPO / "README.md").is_file()
    names = {p.name for p in DOC_FILES}
    assert {"index.md", "quickstart.md"} <= names


@pytest.mark.parametrize("path", DOC_FILES, ids=DOC_IDS)
def test_python_blocks(path, scratch):
    blocks = [b for b in parse_blocks(path.read_text(encoding="utf-8")) if b.lang in ("python", "py", "pycon")]
    namespace = {"__name__": "__docs__", "__builtins__": builtins}
    skipped_defs, ran = set(), 0
    for block in blocks:
        source = python_source(block)
        try:
            tree = ast.parse(source)
        except SyntaxError as err:
            pytest.fail(f"{path.name}: {block}: does not compile: {err}")
        for name in sorted(kronos_names(tree)):
            try:
                resolve(name)
            except AssertionError as err:
                pytest.fail(f"{path.name}: {block}: {err}")

        reason = "marked no-run" if block.no_run else unavailable_reason(tree, scratch)
        if reason is None:
            needs = (loaded_names(tree) - assigned_names(tree)) & skipped_defs
            needs -= set(namespace)
            if needs:
                reason = f"uses {sorted(needs)} from a block that did not run"
        if reason is not None:
            skipped_defs |= assigned_names(tree)
            continue
        try:
            if block.code.lstrip().startswith(">>>"):
                test = doctest.DocTestParser().get_doctest(block.code, namespace, path.name, str(path), block.line)
                runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
                runner.run(test, clear_globs=False)
                assert runner.failures == 0, f"{path.name}: {block}: doctest failed"
            else:
                exec(compile(with_fewer_paths(source), f"{path.name}:{block.line}", "exec"), namespace)
        except Exception as err:  # noqa: BLE001 - report which block failed
            raise AssertionError(f"{path.name}: {block} failed: {type(err).__name__}: {err}") from err
        ran += 1
    if blocks and path.name in ("README.md", "quickstart.md"):
        assert ran >= 1, f"{path.name}: no python block could run; the quickstart must be runnable here"


def _commands(code):
    """Shell command lines of a bash block, with `\\` continuations joined and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    for line in joined.splitlines():
        line = line.strip()
        if line.startswith("$ "):
            line = line[2:]
        if not line or line.startswith("#"):
            continue
        try:
            yield shlex.split(line, comments=True)
        except ValueError:
            continue


def _makefile_targets():
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", text, flags=re.M))


@pytest.mark.parametrize("path", DOC_FILES, ids=DOC_IDS)
def test_shell_blocks(path):
    from transformers_kronos.cli import CliError, build_parser
    from transformers_kronos.evaluation_cli import build_parser as build_evaluate_parser

    targets = _makefile_targets()
    for block in parse_blocks(path.read_text(encoding="utf-8")):
        if block.lang not in ("bash", "sh", "shell", "console"):
            continue
        for words in _commands(block.code):
            # env assignments and launchers in front of the real command
            while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
                words = words[1:]
            if not words:
                continue
            if words[0] in ("kronos-forecast", "kronos-evaluate") or words[:3] == ["python", "-m", "transformers_kronos"]:
                argv = words[1:] if words[0].startswith("kronos-") else words[3:]
                argv = [a for a in argv if a not in ("|", ">")]
                parser = build_parser
                if words[0] == "kronos-evaluate" or argv[:1] == ["evaluate"]:
                    parser = build_evaluate_parser
                    argv = argv[1:] if argv[:1] == ["evaluate"] else argv
                try:
                    parser().parse_args(argv)
                except CliError as err:
                    pytest.fail(f"{path.name}: {block}: `{' '.join(words)}` does not parse: {err}")
            elif words[0] in ("python", "python3") and len(words) > 1 and words[1].endswith(".py"):
                assert (REPO / words[1]).is_file(), f"{path.name}: {block}: {words[1]} does not exist"
            elif words[0] in ("torchrun", "accelerate", "deepspeed"):
                scripts = [w for w in words if w.endswith(".py")]
                for script in scripts:
                    assert (REPO / script).is_file(), f"{path.name}: {block}: {script} does not exist"
            elif words[0] == "make":
                for target in (w for w in words[1:] if not w.startswith("-") and "=" not in w):
                    assert target in targets, f"{path.name}: {block}: no Makefile target {target!r}"


@pytest.mark.parametrize("path", DOC_FILES, ids=DOC_IDS)
def test_names_and_links(path):
    text = path.read_text(encoding="utf-8")
    for name in sorted(set(QUALIFIED_NAME.findall(text))):
        resolve(name)
    for match in LINK.finditer(text):
        target = match["target"]
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # external links and anchors
        file_part = target.split("#")[0]
        if file_part:
            assert (path.parent / file_part).exists(), f"{path.name}: broken link to {target}"


def test_block_parser():
    text = "intro\n<!-- no-run -->\n```python\nx = 1\n```\n\n```python no-run\ny = 2\n```\n```bash\nmake demo\n```\n"
    blocks = parse_blocks(text)
    assert [(b.lang, b.no_run, b.code) for b in blocks] == [
        ("python", True, "x = 1\n"), ("python", True, "y = 2\n"), ("bash", False, "make demo\n")]
    tree = ast.parse("from transformers_kronos import KronosConfig\nimport transformers_kronos as tk\ntk.demo.load_demo()")
    assert kronos_names(tree) == {
        "transformers_kronos", "transformers_kronos.KronosConfig", "transformers_kronos.demo",
        "transformers_kronos.demo.load_demo"}
    assert unavailable_reason(ast.parse("m = f('NeoQuasar/Kronos-small')"), REPO) is not None
    assert unavailable_reason(ast.parse("m = f('examples/data/sample_kline.csv')"), REPO) is None
