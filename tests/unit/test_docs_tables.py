"""The generated tables of README.md and docs/*.md match the result files they name.

`docs/tables.py` rebuilds every `<!-- table: NAME (from FILE; ...) -->` block from its files;
a block that differs is stale (fix: `python docs/tables.py`). Reads JSON only: no pipeline.
"""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_tables():
    spec = importlib.util.spec_from_file_location("docs_tables", ROOT / "docs" / "tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_generated_block_is_stale():
    tables = load_tables()
    assert tables.stale_blocks() == []


def test_every_table_function_is_used_in_a_doc():
    tables = load_tables()
    used = {m["name"] for doc in tables.DOCS for m in tables.BLOCK.finditer(doc.read_text())}
    assert used == set(tables.TABLES)


def test_a_changed_block_is_reported_and_rewritten():
    tables = load_tables()
    name = next(iter(tables.TABLES))
    fresh = tables.render(name)
    edited = fresh.replace("|", "| 9.99 |", 3)
    text, stale = tables.update(f"before\n{edited}\nafter\n")
    assert stale == [name]
    assert text == f"before\n{fresh}\nafter\n"


def test_check_exits_zero_when_current():
    assert load_tables().main(["--check"]) == 0
