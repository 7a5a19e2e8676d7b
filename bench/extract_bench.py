"""Extraction time of a 100-page PDF and a 1,000-row spreadsheet (issue 6).

Two figures per document, median of ``--runs``:
- the extractor alone, in this process (what the format costs);
- a whole upload through the HTTP API of an in-process app: multipart
  receive, the inspection child process, blob writes and the database row
  (what a user waits for).

    .venv/bin/python bench/extract_bench.py --runs 5
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from moonbase import admin
from moonbase.app import create_app
from moonbase.files.extract.document import extract
from moonbase.settings import EMBEDDED_ENGINE, Settings
from moonbase.store.database import Database
from tests.fakes import ScriptedEngine
from tests.files import documents

LINE = "第{page}页 line {line}: the quarterly revenue grew by forty two percent in the east region"


def make_pdf(folder: Path, pages: int) -> Path:
    texts = ["\n".join(LINE.format(page=p, line=n) for n in range(30)) for p in range(pages)]
    return documents.pdf(folder / "hundred-pages.pdf", texts)


def make_xlsx(folder: Path, rows: int) -> Path:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["id", "city", "amount", "note"])
    for row in range(rows):
        sheet.append([row, f"城市{row % 50}", row * 1.5, f"order note number {row}"])
    path = folder / "thousand-rows.xlsx"
    workbook.save(str(path))
    return path


def time_extractor(path: Path, runs: int) -> tuple[float, int]:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        result = extract(path, path.name, 2_000_000, "chi_sim+eng")
        timings.append(time.perf_counter() - started)
    return statistics.median(timings), len(result.text)


async def time_uploads(paths: list[Path], runs: int, folder: Path) -> dict[Path, float]:
    settings = Settings(data_dir=folder / "server")
    db = Database(settings.resolved_database_url)
    await db.migrate()
    key = await admin.create_key(db, "bench")
    app = create_app(settings, engines={EMBEDDED_ENGINE: ScriptedEngine()}, db=db)
    headers = {"Authorization": f"Bearer {key.secret}"}
    timings: dict[Path, float] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://m", timeout=300) as http:
            for path in paths:
                samples = []
                for _ in range(runs):
                    started = time.perf_counter()
                    response = await http.post(
                        "/v1/files",
                        headers=headers,
                        files={"file": (path.name, path.read_bytes())},
                        data={"purpose": "file-extract"},
                    )
                    samples.append(time.perf_counter() - started)
                    assert response.json()["status"] == "ready", response.text
                    await http.delete(f"/v1/files/{response.json()['id']}", headers=headers)
                timings[path] = statistics.median(samples)
    await db.dispose()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        pdf, xlsx = make_pdf(folder, 100), make_xlsx(folder, 1000)
        uploads = asyncio.run(time_uploads([pdf, xlsx], args.runs, folder))
        print("| document | size | extracted chars | extractor alone | whole upload |")
        print("|---|---|---|---|---|")
        for label, path in (("100-page PDF", pdf), ("1,000-row XLSX", xlsx)):
            alone, chars = time_extractor(path, args.runs)
            size_kb = path.stat().st_size / 1024
            print(
                f"| {label} | {size_kb:,.0f} KB | {chars:,} | {alone * 1000:,.0f} ms "
                f"| {uploads[path] * 1000:,.0f} ms |"
            )


if __name__ == "__main__":
    main()
