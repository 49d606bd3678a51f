"""`nudge import products`: the catalogue upserted by id, all or nothing with every bad row at its
line, `--skip-invalid`, and `nudge catalog` showing what was loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from engine.cli.main import main
from engine.core.errors import UserInputError
from engine.ingest.products import import_products
from engine.store.tables import products
from tests.support.store import NOW

CATALOGUE = """id,name,category,price,currency,url,image_url,in_stock,colour,size
p1,Trail Runner,shoes,89.90,cny,https://shop.example/p1,https://img.example/p1.jpg,yes,red,42
p2,Wool Scarf,accessories,25,CNY,https://shop.example/p2,,0,grey,
p3,Rain Jacket,outerwear,,,,,,,
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def stored(store) -> dict[str, dict]:
    with store.engine.connect() as conn:
        return {row.id: row._asdict() for row in conn.execute(sa.select(products))}


def test_a_csv_catalogue_is_typed_with_other_columns_as_attributes(store, tmp_path):
    result = import_products(store, write(tmp_path / "p.csv", CATALOGUE), now=NOW)
    assert (result.read, result.written, result.rejected) == (3, 3, [])
    found = stored(store)
    runner = found["p1"]
    assert (runner["price"], runner["currency"], runner["in_stock"]) == (89.9, "CNY", True)
    assert runner["image_url"] == "https://img.example/p1.jpg"
    assert runner["attributes"] == {"colour": "red", "size": 42}
    assert found["p2"]["in_stock"] is False and found["p2"]["image_url"] is None
    # Nothing said about stock: in stock, as SPEC's default has it.
    assert found["p3"]["in_stock"] is True and found["p3"]["price"] is None


def test_products_are_upserted_and_only_the_columns_a_row_names_change(store, tmp_path):
    import_products(store, write(tmp_path / "p.csv", CATALOGUE), now=NOW)
    update = {"id": "p1", "in_stock": False, "price": 79.9, "attributes": {"season": "ss26"}}
    result = import_products(store, write(tmp_path / "u.jsonl", json.dumps(update) + "\n"), now=NOW)
    assert result.written == 1
    runner = stored(store)["p1"]
    assert (runner["in_stock"], runner["price"], runner["name"], runner["category"]) == (
        False,
        79.9,
        "Trail Runner",
        "shoes",
    )
    assert runner["attributes"] == {"colour": "red", "size": 42, "season": "ss26"}
    assert len(stored(store)) == 3


BAD = """id,name,price,currency,url,in_stock
p1,Fine,10,USD,https://shop.example/p1,true
,No id,10,USD,,
p3,Free?,-5,USD,,
p4,Odd money,10,dollars,,
p5,Script link,10,USD,javascript:alert(1),
p6,Maybe,10,USD,,sometimes
p1,Again,10,USD,,
"""


def test_a_bad_file_is_rejected_whole_with_every_bad_row_at_its_line(store, tmp_path):
    with pytest.raises(UserInputError) as caught:
        import_products(store, write(tmp_path / "bad.csv", BAD), now=NOW)
    shown = [str(p) for p in caught.value.problems]
    path = str(tmp_path / "bad.csv")
    assert shown == [
        f"{path}:3: error: id: required",
        f"{path}:4: error: price: '-5' is not a price (a number from 0 to 1e15)",
        f"{path}:5: error: currency: expected an ISO 4217 code like CNY or USD, got 'dollars'",
        f"{path}:6: error: url: expected an http:// or https:// address, got 'javascript:alert(1)'",
        f"{path}:7: error: in_stock: expected true/false/1/0/yes/no, got 'sometimes'",
        f"{path}:8: error: id: 'p1' appears again (first on line 2): one row per product",
    ]
    assert stored(store) == {}  # not even the good row


def test_skip_invalid_loads_the_good_rows(store, tmp_path):
    result = import_products(store, write(tmp_path / "bad.csv", BAD), now=NOW, skip_invalid=True)
    assert (result.read, result.written, len(result.rejected)) == (7, 1, 6)
    assert list(stored(store)) == ["p1"]


def test_the_command_line_imports_and_the_catalog_shows_products_by_category(workspace_dir, tmp_path):
    runner = CliRunner()
    ws = ["--workspace", str(workspace_dir)]
    done = runner.invoke(main, [*ws, "import", "products", str(write(tmp_path / "p.csv", CATALOGUE))])
    assert done.exit_code == 0, done.output
    assert "products: 3 rows read, 3 written" in done.stdout
    bad = runner.invoke(main, [*ws, "import", "products", str(write(tmp_path / "bad.csv", BAD))])
    assert bad.exit_code == 2
    assert f"{tmp_path / 'bad.csv'}:3: error: id: required" in bad.stderr
    data = json.loads(runner.invoke(main, [*ws, "catalog", "--format", "json"]).stdout)
    assert data["products"] == {
        "count": 3,
        "in_stock": 2,
        "categories": [
            {"category": "accessories", "products": 1, "in_stock": 0},
            {"category": "outerwear", "products": 1, "in_stock": 1},
            {"category": "shoes", "products": 1, "in_stock": 1},
        ],
    }
    table = runner.invoke(main, [*ws, "catalog"]).stdout
    assert "Products (3, 2 in stock)" in table and "shoes" in table
