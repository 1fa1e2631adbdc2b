"""Chinese in PDFs: the print stylesheet falls back to Noto Sans CJK (Debian fonts-noto-cjk,
installed by `make system-deps`), so a Chinese label prints as Chinese, not as empty boxes."""

from __future__ import annotations

import subprocess

from ecrf.outputs.pdf.render import write_pdf
from tests.outputs import pdf_text

LABEL = "严重不良事件"
PAGE = f"""<!doctype html><html lang="zh-Hans"><head><meta charset="utf-8">
<link rel="stylesheet" href="pdf.css"></head>
<body><h1>{LABEL}</h1><table class="facts"><tr><th>受试者</th><td>WUH-001</td></tr>
<tr><th>研究者</th><td>签名 Signature</td></tr></table></body></html>"""


def _fonts(path) -> str:
    done = subprocess.run(["pdffonts", str(path)], capture_output=True, check=True, text=True)
    return done.stdout


def test_a_chinese_label_prints_in_a_cjk_font(app, tmp_path):
    target = tmp_path / "zh.pdf"
    write_pdf(PAGE, target)
    text = pdf_text(target)
    assert LABEL in text and "受试者" in text and "研究者" in text
    fonts = _fonts(target)
    assert "Noto-Sans-CJK-SC" in fonts  # embedded as "XXXXXX+Noto-Sans-CJK-SC"
    assert "DejaVu-Sans" in fonts  # the Latin text keeps the stylesheet's first font
