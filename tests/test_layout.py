"""The package's architecture: layers that import only downwards, no import cycle, short functions, and the
public API at the top of the package."""

import ast
import inspect
from pathlib import Path

import soar

PKG = Path(soar.__file__).parent
LAYERS = {"core": 0, "world": 1, "engine": 2, "method": 3, "jobs": 4, "cli": 5}
"""each subpackage may import from its own layer and the ones below"""


def modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        parts = path.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports(path: Path, known: set[str]) -> set[str]:
    """The soar modules a file imports anywhere (module level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("soar"):
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("soar")]
        found |= {n for n in names if n in known}
    return found


def layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_imports_run_downwards_only():
    mods = modules()
    upward = [
        f"{m} -> {dep}"
        for m, path in mods.items()
        if layer(m) is not None
        for dep in imports(path, set(mods))
        if layer(dep) is not None and layer(dep) > layer(m)
    ]
    assert not upward, upward


def test_no_import_cycle():
    mods = modules()
    graph = {m: imports(p, set(mods)) - {m} for m, p in mods.items() if m != "soar"}
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for dep in graph.get(m, ()):
            if dep.startswith(m + "."):  # a package importing its own submodules is not a cycle
                continue
            assert state.get(dep) != 1, " -> ".join([*stack, m, dep])
            if dep not in state:
                visit(dep, [*stack, m])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [])


def test_the_checker_sees_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from soar.jobs.main import run_main\n")
    assert imports(bad, {"soar.jobs.main", "soar.jobs"}) == {"soar.jobs.main"}
    assert layer("soar.jobs.main") > layer("soar.core.io")


def test_no_function_longer_than_a_screen():
    long = [
        f"{path.relative_to(PKG.parent)}:{f.name} ({f.end_lineno - f.lineno + 1} lines)"
        for path in modules().values()
        for f in ast.walk(ast.parse(path.read_text()))
        if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef) and f.end_lineno - f.lineno + 1 > 80
    ]
    assert not long, long


def test_public_api_is_importable_from_the_top():
    from soar import extract_boxed, pass_at_k, rloo_advantages  # noqa: F401

    names = {"rloo_advantages", "pass_at_k", "vendi_score", "teacher_reward", "extract_boxed", "math_equal"}
    names |= {"sample", "load_policy", "make_world", "run_soar", "SoarConfig", "run_main"}
    assert names <= set(soar.__all__)
    for name in soar.__all__:
        obj = getattr(soar, name)
        assert callable(obj) and (inspect.isfunction(obj) or inspect.isclass(obj)), name
    assert pass_at_k(4, 1, 1) == 0.25 and extract_boxed("so \\boxed{7}") == "7"
    try:
        soar.not_a_name  # noqa: B018
    except AttributeError as e:
        assert "not_a_name" in str(e)
    else:
        raise AssertionError("an unknown name must raise AttributeError")
