"""The package's layers: imports run one way (cli -> tools -> runtime -> capabilities -> core ->
config), and the core and the capabilities never import Faust or aiokafka."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[3] / "streams"
#: Which packages each layer may import from (itself included). sim and local sit beside the
#: runtime: tools use them, nothing below the tools does.
ALLOWED = {
    "config": {"config"},
    "core": {"core", "config"},
    "capabilities": {"capabilities", "core", "config"},
    "sim": {"sim", "config"},
    "local": {"local", "config"},
    "runtime": {"runtime", "capabilities", "core", "config"},
    "tools": {"tools", "runtime", "capabilities", "core", "config", "sim", "local"},
}
PURE = ("core", "capabilities")
FORBIDDEN_IN_PURE = ("faust", "aiokafka", "mode")


def imports(path: Path) -> list[str]:
    """Every module a file imports (at any depth, TYPE_CHECKING blocks included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import of {node.module} (use streams.<package>...)"
            found.append(node.module)
    return found


def files(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_imports_run_one_way(layer: str) -> None:
    wrong = []
    for path in files(layer):
        for module in imports(path):
            parts = module.split(".")
            if parts[0] == "streams" and len(parts) > 1 and parts[1] in ALLOWED and parts[1] not in ALLOWED[layer]:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert wrong == []


@pytest.mark.parametrize("layer", PURE)
def test_core_and_capabilities_never_import_faust_or_aiokafka(layer: str) -> None:
    wrong = [f"{path.relative_to(PACKAGE)} imports {module}" for path in files(layer) for module in imports(path)
             if module.split(".")[0] in FORBIDDEN_IN_PURE]
    assert files(layer) and wrong == []


def test_importing_every_capability_loads_no_faust_or_aiokafka() -> None:
    """The same at run time, in a fresh interpreter: building every capability, a processor and
    running an event through it pulls in neither library (not even indirectly)."""
    code = (
        "import sys\n"
        "from streams.config import Settings\n"
        "from streams.capabilities.registry import build_capabilities\n"
        "caps = build_capabilities(Settings())\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('faust', 'aiokafka', 'mode'))\n"
        "print(len(caps), bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent).stdout.strip()
    assert out == "6 []"
