import ast
import subprocess
import sys
from pathlib import Path

import ct2mri_cli


def test_every_public_name_resolves():
    for name in ct2mri_cli.__all__:
        assert getattr(ct2mri_cli, name) is not None, name


def test_importing_the_cli_does_not_import_torch():
    code = "import sys, ct2mri_cli.cli.app; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, encoding="utf-8", errors="replace", check=True
    )
    assert out.stdout.strip() == "False"


# Each top-level part of the package may import only parts of its own layer or below: the CLI
# sits on the core, never the reverse; the network and the bridge maths know nothing of sampling
# a scan, of training or of the command line.  Preprocessing shares its layer with style and
# evaluation: a training pair is written with its MRI's style key and a QC picture.
LAYERS = [
    {
        "__init__",
        "errors",
        "reporting",
        "settings",
        "device",
        "io",
        "batch",
        "bundled",
        "launcher",
        "shards",
        "threads",
    },
    {"diffusion", "network"},
    {"preprocessing", "style", "evaluation"},
    {"weights", "data"},
    {"inference"},
    {"reports"},
    {"training"},
    {"cli", "__main__"},
]


def _imports(path, package_parts):
    """Top-level part names (``io``, ``network``...) that one module imports from ct2mri_cli."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package_parts[: len(package_parts) - (node.level - 1)]
            names = [node.module] if node.module else [a.name for a in node.names]
            for name in names:
                target = [*base, *name.split(".")]
                found.add(target[1] if len(target) > 1 else "__init__")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ct2mri_cli."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("ct2mri_cli.")}
    return found


# Within a layer, parts that must stay apart: samplers work with any denoiser, and a network
# is a plain function of its inputs.
APART = {("network", "diffusion"), ("diffusion", "network")}


def test_no_module_imports_upward():
    root = Path(ct2mri_cli.__file__).parent
    layer_of = {name: i for i, layer in enumerate(LAYERS) for name in layer}
    wrong = []
    for path in sorted(root.rglob("*.py")):
        parts = ["ct2mri_cli", *path.relative_to(root).with_suffix("").parts]
        me = parts[1]
        assert me in layer_of, f"{path}: add {me!r} to a layer"
        for target in _imports(path, parts[:-1]) - {"__version__", me}:
            assert target in layer_of, f"{path} imports unknown part {target}"
            if layer_of[target] > layer_of[me] or (me, target) in APART:
                wrong.append(f"{path.relative_to(root)} -> {target}")
    assert not wrong, wrong


def test_the_version_is_written_once():
    """pyproject.toml reads the version from the package; the installed metadata agrees."""
    import tomllib
    from importlib.metadata import version

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert version("ct2mri") == ct2mri_cli.__version__
    assert (Path(ct2mri_cli.__file__).parent / "py.typed").is_file()


def _body_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from a function's first statement after its docstring to its end (a command's
    signature declares one option per line and is not counted)."""
    body = function.body
    has_docstring = isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant)
    first = body[1] if has_docstring and len(body) > 1 else body[0]
    return (function.end_lineno or first.lineno) - first.lineno + 1


def test_no_function_body_runs_over_60_lines():
    package = Path(ct2mri_cli.__file__).parent
    long = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _body_lines(node) >= 60:
                long.append(f"{path.relative_to(package)}:{node.lineno} {node.name} ({_body_lines(node)} lines)")
    assert not long, "split these into named parts: " + "; ".join(long)
