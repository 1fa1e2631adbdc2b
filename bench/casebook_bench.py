"""Casebook generation: the whole casebook against WeasyPrint alone on the same HTML.

Run: .venv/bin/python bench/casebook_bench.py [repeats]

Builds a fresh SQLite database in a temporary folder, loads the demo (both trials, data
entered through data capture, UCMSC-Exo daily blood counts to day 42, AEs, corrections
with reasons) and takes the UCMSC-Exo subject with the most stored values. It then times,
in the same run:

- the casebook: reading the model, the HTML, the blood-count plot, both ODM attachments
  (snapshot and transactional) and the PDF/A-3b layout and writing;
- WeasyPrint alone laying out and writing the identical HTML (same style sheets, same
  PDF/A variant, no attachments).

Prints pages, seconds (median of the repeats), pages per second, and the ratio (target:
the casebook within 1.3x of WeasyPrint alone).
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(repeats: int = 3) -> None:
    from flask_migrate import upgrade
    from sqlalchemy import func, select

    from ecrf import create_app
    from ecrf.capture.models import ItemValue, Subject
    from ecrf.core.audit.trail import Actor
    from ecrf.core.extensions import db
    from ecrf.demo.loader import load_demo
    from ecrf.outputs.pdf.casebook import casebook_html, casebook_pdf, render_pdf
    from ecrf.studies.models import Study

    logging.getLogger("weasyprint").setLevel(logging.ERROR)  # matplotlib's SVG styles
    folder = Path(tempfile.mkdtemp(prefix="ecrf-casebook-bench-"))
    app = create_app({"DATABASE_URL": f"sqlite:///{folder / 'bench.db'}",
                      "SECRET_KEY": "bench", "JOBS_IN_PROCESS": False, "TESTING": True,
                      "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 1024,
                      "ARGON2_PARALLELISM": 1})
    with app.app_context():
        upgrade()
        started = time.perf_counter()
        load_demo(db.session, Actor(user_id=None, username="bench"), app.config)
        db.session.commit()
        print(f"demo loaded in {time.perf_counter() - started:.1f} s")
        study = db.session.scalar(select(Study).where(Study.oid == "UCMSCEXO"))
        subject_id, values = db.session.execute(
            select(Subject.id, func.count(ItemValue.id)).join(
                ItemValue, ItemValue.subject_id == Subject.id)
            .where(Subject.study_id == study.id).group_by(Subject.id)
            .order_by(func.count(ItemValue.id).desc()).limit(1)).one()
        subject = db.session.get(Subject, subject_id)
        print(f"subject {subject.subject_key}: {values} stored values")

        whole, alone, pages = [], [], 0
        html = casebook_html(db.session, subject, generated_by="bench")
        for index in range(2 * repeats):
            # Alternate the order and start each timing from a collected heap, so that
            # neither side pays for the other's garbage.
            db.session.expire_all()
            gc.collect()
            t0 = time.perf_counter()
            if (index % 2 == 0) == (index // 2 % 2 == 0):
                data = casebook_pdf(db.session, subject, generated_by="bench",
                                    generated_at=dt.datetime.now(dt.UTC))
                whole.append(time.perf_counter() - t0)
            else:
                render_pdf(html, None, [])
                alone.append(time.perf_counter() - t0)
        (folder / "casebook.pdf").write_bytes(data)
        import subprocess

        info = subprocess.run(["pdfinfo", str(folder / "casebook.pdf")], capture_output=True,
                              text=True)
        if info.returncode == 0:
            pages = int(info.stdout.split("Pages:")[1].split()[0])
        t_whole, t_alone = statistics.median(whole), statistics.median(alone)
        print(f"pages: {pages}")
        print(f"casebook (model + HTML + plot + 2 ODM files + PDF/A): {t_whole:.2f} s, "
              f"{pages / t_whole:.1f} pages/s")
        print(f"WeasyPrint alone on the identical HTML:               {t_alone:.2f} s, "
              f"{pages / t_alone:.1f} pages/s")
        print(f"ratio: {t_whole / t_alone:.2f}x (target <= 1.3x)")
        print(f"file: {folder / 'casebook.pdf'}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
