"""docs/architecture.md places every file: each module of compiler/, kernels/, rtl/ and sim/ is
named on the map (a bench sim/test_X.py by its rtl/X.v, as the map's rule says), so a file
added without its place on the map fails here."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAP = (ROOT / "docs" / "architecture.md").read_text()


def _modules():
    for top in ("compiler", "kernels", "rtl", "sim"):
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix in (".py", ".v") and path.name != "__init__.py" and "__pycache__" not in path.parts:
                yield path.relative_to(ROOT)


def _placed(path: Path) -> bool:
    if path.stem in MAP:
        return True
    # sim/test_X.py <-> rtl/X.v: a bench is placed by its module
    return path.parts[0] == "sim" and path.stem.startswith("test_") and (ROOT / "rtl" / f"{path.stem[5:]}.v").exists()


def test_every_module_is_placed_on_the_map():
    unplaced = [str(p) for p in _modules() if not _placed(p)]
    assert not unplaced, f"docs/architecture.md does not place: {', '.join(unplaced)}"


def test_every_layer_of_the_import_contract_is_on_the_map():
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["type"] == "layers")["layers"]
    for layer in layers:
        for name in layer.split("|"):
            name = name.strip()
            assert f"compiler/{name}" in MAP, f"layer {name!r} of the import contract is not on the map"
