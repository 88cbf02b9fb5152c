"""The documentation against the code: every config key in docs/training.md with its type and
default, README.md's size, and every relative link in README.md and docs/ leading somewhere."""

import dataclasses
import os
import re
import typing

import pytest
import yaml

from tf_cyclegan.training.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
TRAINING_MD = os.path.join(DOCS, "training.md")
README_LIMIT = 15_000  # bytes: depth goes to docs/

# | `section.key` | type | default | meaning |
KEY_ROW = re.compile(r"^\|\s*`([A-Za-z_]\w*\.[A-Za-z_]\w*)`\s*\|(.*)\|\s*$")


def markdown_files():
    return [os.path.join(ROOT, "README.md")] + sorted(
        os.path.join(DOCS, name) for name in os.listdir(DOCS) if name.endswith(".md"))


def config_fields():
    """{"section.key": dataclasses.Field} for every key of `Config`, walked with dataclasses.fields."""
    fields = {}
    for section in dataclasses.fields(Config):
        section_type = section.default_factory
        hints = typing.get_type_hints(section_type)
        for field in dataclasses.fields(section_type):
            fields[f"{section.name}.{field.name}"] = (field, hints[field.name])
    return fields


def type_name(annotation):
    """How the table spells a type: `int`, `str or null`, `bool or auto`, `lsgan, vanilla`."""
    if typing.get_origin(annotation) is typing.Union:
        return " or ".join(type_name(arg) for arg in typing.get_args(annotation))
    if typing.get_origin(annotation) is typing.Literal:
        return ", ".join(str(arg) for arg in typing.get_args(annotation))
    return "null" if annotation is type(None) else annotation.__name__


def documented_keys():
    """{"section.key": (type cell, default cell)} from the key tables of docs/training.md."""
    rows = {}
    with open(TRAINING_MD, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            match = KEY_ROW.match(line.strip())
            if not match:
                continue
            key, rest = match.groups()
            cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", rest)]
            assert len(cells) == 3, f"docs/training.md:{number}: want | key | type | default | meaning |: {line!r}"
            assert key not in rows, f"docs/training.md:{number}: {key} is documented twice"
            rows[key] = (cells[0], cells[1])
    return rows


def parse_default(cell):
    """A default cell (`286`, `null`, `true`, `lsgan`, `0.0002`) as the YAML value it spells."""
    return yaml.safe_load(cell.strip().strip("`"))


def test_every_config_key_is_documented_in_training_md():
    missing = sorted(set(config_fields()) - set(documented_keys()))
    assert not missing, f"config keys with no row in docs/training.md: {missing}"


def test_training_md_documents_no_key_that_does_not_exist():
    unknown = sorted(set(documented_keys()) - set(config_fields()))
    assert not unknown, f"docs/training.md documents keys the config does not have: {unknown}"


def test_each_documented_default_and_type_is_the_dataclass_one():
    fields, rows = config_fields(), documented_keys()
    wrong = []
    for key in sorted(set(fields) & set(rows)):
        field, annotation = fields[key]
        type_cell, default_cell = rows[key]
        default = parse_default(default_cell)
        if default != field.default or isinstance(default, bool) != isinstance(field.default, bool):
            wrong.append(f"{key}: default {default_cell} documented, {field.default!r} in the dataclass")
        if type_cell != type_name(annotation):
            wrong.append(f"{key}: type {type_cell!r} documented, {type_name(annotation)!r} in the dataclass")
    assert not wrong, "\n".join(wrong)


def test_every_renamed_key_is_listed_in_training_md_with_its_new_name():
    from tf_cyclegan.training.config import _RENAMED_KEYS

    with open(TRAINING_MD, encoding="utf-8") as f:
        listed = dict(re.findall(r"^- `([\w.]+)` → `([\w.]+)`$", f.read(), re.M))
    assert listed == _RENAMED_KEYS


def test_the_type_and_default_cells_parse_as_the_test_expects():
    """The parser itself: a table row of each kind reads as meant."""
    assert KEY_ROW.match("| `train.jit_compile` | bool or auto | `auto` | XLA \\| or not |").groups()[0] == \
        "train.jit_compile"
    assert [parse_default(cell) for cell in ("`null`", "`true`", "`0.0002`", "`lsgan`", "`286`")] == \
        [None, True, 0.0002, "lsgan", 286]
    assert type_name(typing.Optional[str]) == "str or null"
    assert type_name(typing.Union[bool, typing.Literal["auto"]]) == "bool or auto"


def test_readme_is_at_most_15_kb():
    size = os.path.getsize(os.path.join(ROOT, "README.md"))
    assert size <= README_LIMIT, f"README.md is {size} bytes; move detail to docs/ (limit {README_LIMIT})"


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~)")


def prose_lines(path):
    """The lines of a Markdown file outside fenced code blocks."""
    inside = False
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if FENCE.match(line.strip()):
                inside = not inside
                continue
            if not inside:
                yield number, line


def anchors(path):
    """GitHub's heading anchors of a Markdown file."""
    slugs = set()
    for _, line in prose_lines(path):
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", match.group(1)).strip().lower()
            slug = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
            base, n = slug, 1
            while slug in slugs:
                slug, n = f"{base}-{n}", n + 1
            slugs.add(slug)
    return slugs


def relative_links():
    for path in markdown_files():
        for number, line in prose_lines(path):
            line = re.sub(r"`[^`]*`", "", line)  # code spans are not links
            for target in LINK.findall(line):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                    continue
                yield os.path.relpath(path, ROOT), number, target


def test_the_link_finder_finds_links():
    links = list(relative_links())
    assert ("README.md", "docs/demo_samples.png") in {(where, target) for where, _, target in links}
    assert len(links) > 10


@pytest.mark.parametrize("where, number, target", list(relative_links()), ids=lambda value: str(value))
def test_every_relative_link_points_to_a_file_that_exists(where, number, target):
    file_part, _, fragment = target.partition("#")
    source = os.path.join(ROOT, where)
    destination = os.path.normpath(os.path.join(os.path.dirname(source), file_part)) if file_part else source
    assert os.path.exists(destination), f"{where}:{number}: {target} -> {os.path.relpath(destination, ROOT)} is missing"
    if fragment and destination.endswith(".md"):
        assert fragment in anchors(destination), f"{where}:{number}: no heading #{fragment} in {file_part or where}"


# A repository path in a code span: `tf_cyclegan/training/config.py`, `configs/demo.yaml`,
# `tests/models/test_cyclegan.py::test_name`, `tests/conftest.py:gpu_branches`.
REPO_PATH = re.compile(r"`((?:tf_cyclegan|tests|benchmarks|configs|docs)/[\w./-]*?)(?:(::?)(\w+))?`")


def repository_paths():
    for path in markdown_files():
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                for target, _, name in REPO_PATH.findall(line):
                    yield os.path.relpath(path, ROOT), number, target, name


@pytest.mark.parametrize("where, number, target, name", list(repository_paths()), ids=lambda value: str(value))
def test_every_repository_path_named_in_the_docs_exists(where, number, target, name):
    path = os.path.join(ROOT, target)
    assert os.path.exists(path), f"{where}:{number}: `{target}` does not exist"
    if name:
        with open(path, encoding="utf-8") as f:
            defined = re.search(rf"^\s*(?:def|class)\s+{name}\b", f.read(), re.M)
        assert defined, f"{where}:{number}: no {name} in {target}"


def layout_tree():
    """The `tf_cyclegan/...` paths in docs/architecture.md's layout block (indented two spaces a level)."""
    with open(os.path.join(DOCS, "architecture.md"), encoding="utf-8") as f:
        text = f.read()
    block = re.search(r"## Layout\s+```text\n(.*?)```", text, re.S).group(1)
    paths, stack = set(), []
    for line in block.splitlines():
        name = line.split()[0] if line.strip() else ""
        if not (name.endswith("/") or name.endswith(".py")):
            continue  # a description's second line
        depth = (len(line) - len(line.lstrip())) // 2
        stack[depth:] = [name.rstrip("/")]
        if stack[0] == "tf_cyclegan":
            paths.add("/".join(stack) + ("/" if name.endswith("/") else ""))
    return paths


def test_no_two_test_files_share_a_name():
    """pytest imports each test file by its name alone (tests/ has no packages), so a second
    file of the same name in another folder fails to collect: name it after what it tests."""
    seen = {}
    for folder, folders, files in os.walk(os.path.join(ROOT, "tests")):
        folders[:] = [name for name in folders if name != "fixtures" and not name.startswith((".", "_"))]
        for name in files:
            if name.startswith("test_") and name.endswith(".py"):
                seen.setdefault(name, []).append(os.path.relpath(os.path.join(folder, name), ROOT))
    assert not {name: paths for name, paths in seen.items() if len(paths) > 1}


def test_the_layout_tree_lists_every_module_of_the_package():
    package = os.path.join(ROOT, "tf_cyclegan")
    modules = set()
    for folder, folders, files in os.walk(package):
        folders[:] = [name for name in folders if not name.startswith(("_", "."))]
        relative = os.path.relpath(folder, ROOT)
        modules.add(relative + "/")
        modules |= {f"{relative}/{name}" for name in files
                    if name.endswith(".py") and not (name == "__init__.py" and relative != "tf_cyclegan")}
    listed = layout_tree()
    assert not modules - listed, f"modules missing from docs/architecture.md's layout: {sorted(modules - listed)}"
    assert not listed - modules, f"docs/architecture.md lists what does not exist: {sorted(listed - modules)}"


def test_the_layers_in_the_architecture_page_are_the_contract_lint_imports_checks():
    """docs/architecture.md states the import contracts of pyproject.toml, the same layers."""
    tomllib = pytest.importorskip("tomllib")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        contracts = tomllib.load(f)["tool"]["importlinter"]["contracts"]
    layers = next(c["layers"] for c in contracts if c["type"] == "layers")
    with open(os.path.join(DOCS, "architecture.md"), encoding="utf-8") as f:
        page = f.read()
    block = page.split("## The layers, checked", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    assert block.strip().splitlines() == layers
    assert {c["type"] for c in contracts} == {"layers", "acyclic_siblings"}
